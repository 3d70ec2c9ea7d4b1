package server

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTransport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		listen          string
		tls, insecure   bool
		wantErr, naming string
	}{
		{"127.0.0.1:7443", false, false, "refusing", "--insecure"},
		{"127.0.0.1:7443", false, false, "refusing", "--tls-cert"},
		{"127.0.0.1:7443", false, true, "", ""},
		{"127.8.9.10:7443", false, true, "", ""},
		{"[::1]:7443", false, true, "", ""},
		{"localhost:7443", false, true, "", ""},
		{"10.99.0.1:7443", false, true, "loopback", "--insecure"},
		{":7443", false, true, "loopback", "--insecure"},
		{"0.0.0.0:7443", false, true, "loopback", "--insecure"},
		{"[::]:7443", false, true, "loopback", "--insecure"},
		{"example.internal:7443", false, true, "loopback", "--insecure"},
		{"10.99.0.1:7443", true, false, "", ""},
	}
	for _, tc := range cases {
		err := CheckTransport(tc.listen, tc.tls, tc.insecure)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s tls=%v insecure=%v: %v", tc.listen, tc.tls, tc.insecure, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.naming)):
			t.Errorf("%s tls=%v insecure=%v: %v; want an error about %s naming %s", tc.listen, tc.tls, tc.insecure, err, tc.wantErr, tc.naming)
		}
	}
	if err := CheckTransport("127.0.0.1:1", false, false); !errors.Is(err, ErrNoTransportSecurity) {
		t.Errorf("no TLS, no --insecure: %v", err)
	}
}
