package audit

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestRedactRemovesSecretsAtAnyDepth(t *testing.T) {
	t.Parallel()
	const secret = "scn_0123456789abcdef_" + "feedface"
	resp := &pb.CreateTokenResponse{Token: &pb.APIToken{Id: "0123456789abcdef", Name: "ops"}, Secret: secret}
	b, err := Redact(resp)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "feedface") || strings.Contains(string(b), `"secret"`) {
		t.Fatalf("redacted response still holds the secret: %s", b)
	}
	if !strings.Contains(string(b), "0123456789abcdef") {
		t.Fatalf("redaction removed the id too: %s", b)
	}
	req := &pb.CreateTokenRequest{Name: "ops", Role: pb.TokenRole_TOKEN_ROLE_VIEWER, Sites: []string{"lab"}, Ttl: durationpb.New(3600e9)}
	if b, err = Redact(req); err != nil || !strings.Contains(string(b), `"sites":["lab"]`) || !strings.Contains(string(b), `"role":"TOKEN_ROLE_VIEWER"`) {
		t.Fatalf("request summary %s, %v", b, err)
	}
	// The original message is untouched.
	if resp.GetSecret() != secret {
		t.Fatal("Redact modified its argument")
	}
}

func TestIsSecretField(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"secret": true, "token": true, "enroll_token": true, "private_key": true, "csr": true, "client_secret": true,
		"page_token": false, "next_page_token": false, "name": false, "site": false, "id": false,
	} {
		if got := IsSecretField(name); got != want {
			t.Errorf("IsSecretField(%q) = %v", name, got)
		}
	}
}

func TestObjectIDsAndSite(t *testing.T) {
	t.Parallel()
	req := (&pb.DeleteSiteRequest{Name: "lab"}).ProtoReflect()
	if got := siteOf("/scanorama.v1.AdminService/DeleteSite", req); got != "lab" {
		t.Errorf("site of DeleteSite = %q", got)
	}
	tr := (&pb.CreateTargetRequest{Site: "lab", Name: "net"}).ProtoReflect()
	if got := siteOf("/scanorama.v1.AdminService/CreateTarget", tr); got != "lab" {
		t.Errorf("site of CreateTarget = %q", got)
	}
	resp := (&pb.ScanNowResponse{Jobs: []*pb.Job{{Id: "j1"}, {Id: "j2"}}}).ProtoReflect()
	if got := idsOf(resp, true); strings.Join(got, ",") != "j1,j2" {
		t.Errorf("ids of ScanNowResponse = %v", got)
	}
}
