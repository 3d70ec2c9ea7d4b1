package e2e_test

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// doctor runs a binary's doctor command and returns its output and exit code.
func doctor(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), append([]string{"doctor"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee := (*exec.ExitError)(nil); err != nil {
		var ok bool
		if ee, ok = err.(*exec.ExitError); !ok {
			t.Fatalf("%s doctor: %v\n%s", bin, err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// lineRe matches one doctor line: status, check name, detail.
var lineRe = regexp.MustCompile(`^(OK|WARN|FAIL) +(.+?): .+$`)

// checkLines parses the doctor's output: every non-log line is a check line;
// it returns status by check name.
func checkLines(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := lineRe.FindStringSubmatch(line)
		if m == nil {
			continue // log lines on stderr
		}
		got[m[2]] = m[1]
	}
	return got
}

func TestAgentDoctor(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	spool := filepath.Join(t.TempDir(), "spool")

	t.Run("healthy", func(t *testing.T) {
		out, code := doctor(t, "scanorama-agent", "--insecure", "--controller", s.addr, "--site", "lab", "--spool-dir", spool)
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		got := checkLines(t, out)
		for _, c := range []string{"nmap", "raw sockets", "spool", "controller " + s.addr, "clock vs " + s.addr} {
			if got[c] != "OK" {
				t.Errorf("check %q: %q, want OK:\n%s", c, got[c], out)
			}
		}
		mustContain(t, out, "version ")
		mustContain(t, out, " free")
		if got["tls"] != "WARN" {
			t.Errorf("plaintext should be a warning: %q\n%s", got["tls"], out)
		}
	})
	t.Run("unreachable controller", func(t *testing.T) {
		dead := freePort(t) // closed again: nothing listens there
		out, code := doctor(t, "scanorama-agent", "--insecure", "--controller", s.addr+","+dead, "--site", "lab", "--spool-dir", spool)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		got := checkLines(t, out)
		if got["controller "+dead] != "FAIL" || got["controller "+s.addr] != "OK" {
			t.Fatalf("want the dead controller FAIL and the live one OK:\n%s", out)
		}
		mustContain(t, out, "FAIL controller "+dead+": unreachable")
	})
	t.Run("missing nmap and unwritable spool", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := exec.Command("touch", file).Run(); err != nil {
			t.Fatal(err)
		}
		out, code := doctor(t, "scanorama-agent", "--insecure", "--controller", s.addr, "--site", "lab",
			"--spool-dir", filepath.Join(file, "spool"), "--nmap", filepath.Join(t.TempDir(), "no-nmap"))
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		got := checkLines(t, out)
		if got["nmap"] != "FAIL" || got["spool"] != "FAIL" {
			t.Fatalf("want nmap and spool FAIL:\n%s", out)
		}
		mustContain(t, out, "--nmap")
		mustContain(t, out, "--spool-dir")
	})
}

func TestControllerDoctor(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}

	t.Run("healthy", func(t *testing.T) {
		out, code := doctor(t, "scanorama-controller", "--database-url", s.dbURL)
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		got := checkLines(t, out)
		for _, c := range []string{"database", "migrations", "partitions", "leases"} {
			if got[c] != "OK" {
				t.Errorf("check %q: %q, want OK:\n%s", c, got[c], out)
			}
		}
		mustContain(t, out, "reachable, PostgreSQL ")
		mustContain(t, out, "current")
	})
	t.Run("expired leases pile up", func(t *testing.T) {
		// A lease that expired long ago and is still held: what the database
		// looks like when no controller (so no reaper) runs.
		ctx := s.ctx()
		tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "stuck", Network: "127.0.0.1/32", Ports: "1"})
		if err != nil {
			t.Fatal(err)
		}
		scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		s.ctrl.stop(t)
		if _, err := s.pool.Exec(ctx, `UPDATE scan_jobs SET status = 'running', worker_id = 'gone-agent', lease_token = 1,
			attempt = 1, timeout_at = now() - interval '1 hour' WHERE id = $1`, scan.GetJobs()[0].GetId()); err != nil {
			t.Fatal(err)
		}
		out, code := doctor(t, "scanorama-controller", "--database-url", s.dbURL)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		mustContain(t, out, "FAIL leases: 1 lease(s) expired")
		mustContain(t, out, "no reaper is running")
	})
	t.Run("unreachable database", func(t *testing.T) {
		dead := freePort(t)
		out, code := doctor(t, "scanorama-controller", "--database-url", "postgres://scanorama@"+dead+"/scanorama?connect_timeout=2")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		mustContain(t, out, "FAIL database: unreachable")
		mustContain(t, out, "--database-url")
	})
}

// Both doctors read the TLS material serve and the agent use: the agent's
// doctor reaches an mTLS controller with its certificate (and reports the
// certificates' short life as a warning), the controller's checks its own
// files; an agent certificate of another CA fails the controller check.
func TestDoctorsWithMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "scanorama-test")
	srvCert, srvKey := ca.leaf("controller", true)
	adminCert, adminKey := ca.leaf("admin", false)
	agentCert, agentKey := ca.leaf("agent-1", false)
	rogue := newTestCA(t, "rogue")
	rogueCert, rogueKey := rogue.leaf("intruder", false)
	s := newStackWith(t, netip.MustParseAddr("127.0.0.1"), clientCreds(t, ca, adminCert, adminKey),
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca.file)
	spool := filepath.Join(t.TempDir(), "spool")

	out, code := doctor(t, "scanorama-agent", "--controller", s.addr, "--site", "lab", "--spool-dir", spool,
		"--tls-ca", ca.file, "--tls-cert", agentCert, "--tls-key", agentKey)
	if code != 0 {
		t.Fatalf("agent doctor: exit %d, want 0:\n%s", code, out)
	}
	got := checkLines(t, out)
	if got["controller "+s.addr] != "OK" || got["clock vs "+s.addr] != "OK" {
		t.Fatalf("agent doctor over mTLS:\n%s", out)
	}
	// The test certificates live one hour: a warning, not a failure.
	mustContain(t, out, `WARN tls cert: --tls-cert "agent-1" expires in 0 days`)
	mustContain(t, out, `WARN tls ca: --tls-ca "scanorama-test" expires in 0 days`)

	out, code = doctor(t, "scanorama-agent", "--controller", s.addr, "--site", "lab", "--spool-dir", spool,
		"--tls-ca", ca.file, "--tls-cert", rogueCert, "--tls-key", rogueKey)
	if code != 1 {
		t.Fatalf("agent doctor with a foreign certificate: exit %d, want 1:\n%s", code, out)
	}
	mustContain(t, out, "FAIL controller "+s.addr+": unreachable")

	out, code = doctor(t, "scanorama-controller", "--database-url", s.dbURL,
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca.file)
	if code != 0 {
		t.Fatalf("controller doctor: exit %d, want 0:\n%s", code, out)
	}
	mustContain(t, out, `WARN tls: --tls-cert "controller" expires in 0 days`)
	mustContain(t, out, `WARN tls: --tls-client-ca "scanorama-test" expires in 0 days`)

	out, code = doctor(t, "scanorama-controller", "--database-url", s.dbURL, "--tls-cert", srvCert, "--tls-key", agentKey)
	if code != 1 {
		t.Fatalf("controller doctor with a mismatched key: exit %d, want 1:\n%s", code, out)
	}
	mustContain(t, out, "FAIL tls: ")
}
