package e2e_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// cookbook returns the grpcurl commands of the README's cookbook section.
func cookbook(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	inSection, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inSection = line == "## grpcurl cookbook"
		case inSection && strings.HasPrefix(line, "```sh"):
			inBlock = true
		case inSection && inBlock && strings.HasPrefix(line, "```"):
			inBlock = false
		case inSection && inBlock && strings.HasPrefix(line, "grpcurl "):
			cmds = append(cmds, line)
		}
	}
	if len(cmds) < 15 {
		t.Fatalf("found %d cookbook commands in README.md; the section or its format changed", len(cmds))
	}
	return cmds
}

var (
	firstID    = regexp.MustCompile(`"id": "([0-9a-f-]{36})"`)
	firstToken = regexp.MustCompile(`"id": "([0-9a-f]{16})"`)
)

// Every grpcurl command in the README's cookbook runs, unchanged but for
// the address, the ids it names and $TOKEN (an admin token made with
// "scanorama-controller token create"), against a live controller. The
// controller serves --insecure, but a bearer token sent to it is verified:
// the test also checks that a revoked one is refused.
func TestReadmeCookbookCommandsWork(t *testing.T) {
	t.Parallel()
	grpcurl, err := filepath.Abs("../../bin/grpcurl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("bin/grpcurl missing: run `make tools` (make test does): %v", err)
	}
	s := newStack(t)
	vars := map[string]string{"$CTRL": s.addr, "$TOKEN": s.createToken("--role", "admin", "--name", "readme")}
	// The cookbook's webhook points at a receiver this test opens, never at
	// a port on this machine the test does not own.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	vars["http://127.0.0.1:8080/scanorama-hook"] = hook.URL + "/scanorama-hook"
	seeded := false
	for _, line := range cookbook(t) {
		if strings.Contains(line, "AdminService/ListHosts") && !seeded {
			seedHost(t, s, vars["TARGET_ID"])
			seeded = true
		}
		cmd := line
		for k, v := range vars {
			cmd = strings.ReplaceAll(cmd, k, v)
		}
		args, err := shellWords(strings.TrimPrefix(cmd, "grpcurl "))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, grpcurl, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README command failed:\n  %s\n%s", line, out)
		}
		switch {
		case strings.Contains(line, "AdminService/CreateTarget"):
			vars["TARGET_ID"] = firstID.FindStringSubmatch(string(out))[1]
		case strings.Contains(line, "AdminService/ScanNow"):
			vars["JOB_ID"] = firstID.FindStringSubmatch(string(out))[1]
		case strings.Contains(line, "AdminService/CreateToken"):
			vars["TOKEN_ID"] = firstToken.FindStringSubmatch(string(out))[1]
			vars["$LAB_VIEWER"] = regexp.MustCompile(`"secret": "(scn_[0-9a-f_]+)"`).FindStringSubmatch(string(out))[1]
		case strings.Contains(line, "AdminService/CreateWebhook"):
			vars["WEBHOOK_ID"] = firstID.FindStringSubmatch(string(out))[1]
		}
	}
	// The viewer token the cookbook created and revoked no longer works.
	out, err := exec.Command(grpcurl, "-plaintext", "-H", "authorization: Bearer "+vars["$LAB_VIEWER"], "-d", "{}", s.addr,
		"scanorama.v1.AdminService/ListSites").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Unauthenticated") {
		t.Errorf("a revoked token still works: %v\n%s", err, out)
	}
}

// seedHost gives the cookbook's host queries something to find: a simulated
// agent commits 10.99.0.10 with port 22 open for a fresh run of the target.
func seedHost(t *testing.T, s *stack, targetID string) {
	t.Helper()
	if _, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: targetID}); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "agent-1", "10.99.0.0/24")
	l := a.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease for the seeding run")
	}
	if _, err := a.send(context.Background(), l, [][]*pb.HostResult{{host("10.99.0.10", 22)}}, false); err != nil {
		t.Fatal(err)
	}
}

// shellWords splits a command line the way sh would for the README's
// commands: words separated by spaces, single- and double-quoted strings
// kept whole (variables were substituted before).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case (r == '\'' || r == '"') && quote == 0:
			quote, inWord = r, true
		case r == quote:
			quote = 0
		case r == ' ' && quote == 0:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
