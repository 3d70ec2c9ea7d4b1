package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/webhooks"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// receiver is a loopback webhook receiver that checks every delivery's
// signature and remembers each delivery id's body.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	failFirst atomic.Int64 // answer 500 to this many more requests
	down      atomic.Bool  // drop connections without an answer
	failing   atomic.Bool  // answer 500 to requests for failPath while set
	failPath  string

	mu       sync.Mutex
	bodies   map[string][]byte // delivery id → body
	order    []string          // delivery ids in order of first receipt
	requests int
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: secret, bodies: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.down.Load() {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.failFirst.Add(-1) >= 0 || (r.failing.Load() && req.URL.Path == r.failPath) {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !webhooks.Verify(r.secret, body, req.Header.Get(webhooks.HeaderSignature)) {
		r.t.Errorf("delivery %s: signature %q does not verify", req.Header.Get(webhooks.HeaderDelivery), req.Header.Get(webhooks.HeaderSignature))
	}
	id := req.Header.Get(webhooks.HeaderDelivery)
	var p webhooks.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.DeliveryID != id {
		r.t.Errorf("delivery %s: body %.200s (%v)", id, body, err)
	}
	if prev, ok := r.bodies[id]; ok {
		if !bytes.Equal(prev, body) {
			r.t.Errorf("delivery %s came again with another body", id)
		}
	} else {
		r.bodies[id] = body
		r.order = append(r.order, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// events is every event received, delivery by delivery in order of first
// receipt, for one webhook ("" for all).
func (r *receiver) events(webhook string) []webhooks.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []webhooks.Event
	for _, id := range r.order {
		var p webhooks.Payload
		_ = json.Unmarshal(r.bodies[id], &p)
		if webhook == "" || p.Webhook == webhook {
			out = append(out, p.Events...)
		}
	}
	return out
}

func eventIDs(evs []webhooks.Event) []int64 {
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// waitEvents waits until the webhook has received n events.
func (r *receiver) waitEvents(t *testing.T, webhook string, n int, within time.Duration) []webhooks.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := r.events(webhook)
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A receiver that fails the first deliveries, and is down while the
// controller restarts, still receives every change, in commit order, each
// signed; a delivery seen twice comes with the same id and body.
func TestWebhookDeliversEveryChangeThroughFailuresAndRestart(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--webhook-retry-base", "50ms")
	const scope = "2001:db8:98::/114"
	jobs := setupTarget(t, s, scope, "22,80")
	recv := newReceiver(t, "a-secret-of-sixteen-bytes")
	if _, err := s.admin.CreateWebhook(s.ctx(), &pb.CreateWebhookRequest{
		Name: "all-changes", Url: recv.srv.URL + "/hook", Site: "lab", Secret: recv.secret,
	}); err != nil {
		t.Fatal(err)
	}
	recv.failFirst.Store(3)
	runRound(t, []pb.AgentServiceClient{s.agentc}, "first", scope, len(jobs), 8, func(network string) []*pb.HostResult {
		return []*pb.HostResult{host(firstAddr(network, 1), 22, 80), host(firstAddr(network, 2), 22)}
	})
	// Down before the controller goes away, through its restart and the
	// next round's commits.
	recv.down.Store(true)
	time.Sleep(300 * time.Millisecond)
	s.ctrl.kill()
	s.startController()
	resp, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()})
	if err != nil {
		t.Fatal(err)
	}
	runRound(t, []pb.AgentServiceClient{s.agentc}, "second", scope, len(resp.GetJobs()), 8, func(network string) []*pb.HostResult {
		return []*pb.HostResult{host(firstAddr(network, 2), 22, 80), host(firstAddr(network, 3), 22)}
	})
	time.Sleep(time.Second)
	recv.down.Store(false)

	want := historyIDs(t, s)
	// First round: 2 discovered, 3 opened; second: 1 down, 1 opened, 1 discovered, 1 opened.
	if len(want) != len(jobs)*9 {
		t.Fatalf("host_history has %d rows, want %d", len(want), len(jobs)*9)
	}
	got := eventIDs(recv.waitEvents(t, "all-changes", len(want), 2*time.Minute))
	if !slices.Equal(got, want) {
		t.Fatalf("received %d events, want %d in host_history's commit order", len(got), len(want))
	}
	recv.mu.Lock()
	t.Logf("%d events in %d deliveries over %d requests", len(got), len(recv.order), recv.requests)
	recv.mu.Unlock()
	list, err := s.admin.ListWebhooks(s.ctx(), &pb.ListWebhooksRequest{})
	if err != nil || len(list.GetWebhooks()) != 1 || list.GetWebhooks()[0].GetPendingDeliveries() != 0 {
		t.Fatalf("ListWebhooks: %v, %v", list, err)
	}
}

// down_after_scans holds host_down back until enough scans in a row missed
// the host; a host back sooner sends neither alert. A dead delivery is
// visible, holds back the later ones, and goes out when re-driven.
func TestWebhookFlapSuppressionAndDeadLetters(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--webhook-retry-base", "20ms", "--webhook-max-attempts", "2")
	jobs := setupTarget(t, s, "10.99.9.0/29", "22")
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	recv := newReceiver(t, "another-secret-0123456789")
	recv.failPath = "/c"
	create := func(name, path string, down int32, events ...string) string {
		resp, err := s.admin.CreateWebhook(s.ctx(), &pb.CreateWebhookRequest{
			Name: name, Url: recv.srv.URL + path, Site: "lab", Secret: recv.secret, DownAfterScans: down, Events: events,
			Format: pb.WebhookFormat_WEBHOOK_FORMAT_SLACK,
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetWebhook().GetId()
	}
	create("every-down", "/a", 1, "host_down", "host_up")
	create("second-down", "/b", 2, "host_down", "host_up")
	recv.failing.Store(true)
	deadID := create("dead-letters", "/c", 1)

	a := register(t, s.agentc, "lab", "agent", "10.99.0.0/16")
	scan := func(hosts ...*pb.HostResult) {
		t.Helper()
		l := a.acquire(5 * time.Second)
		if l == nil {
			t.Fatal("no lease")
		}
		if _, err := a.send(context.Background(), l, [][]*pb.HostResult{hosts}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()}); err != nil {
			t.Fatal(err)
		}
	}
	scan(host("10.99.9.2", 22), host("10.99.9.3", 22)) // discovered
	scan(host("10.99.9.3", 22))                        // .2 down
	scan(host("10.99.9.2", 22), host("10.99.9.3", 22)) // .2 up: a flap
	scan(host("10.99.9.3", 22))                        // .2 down
	scan(host("10.99.9.3", 22))                        // .2 missed a second time

	kinds := func(evs []webhooks.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Event+" "+e.IPAddress)
		}
		return out
	}
	every := kinds(recv.waitEvents(t, "every-down", 3, time.Minute))
	if want := []string{"host_down 10.99.9.2", "host_up 10.99.9.2", "host_down 10.99.9.2"}; !slices.Equal(every, want) {
		t.Fatalf("down_after_scans 1 received %v, want %v", every, want)
	}
	second := recv.waitEvents(t, "second-down", 1, time.Minute)
	if len(second) != 1 || second[0].Event != "host_down" {
		t.Fatalf("down_after_scans 2 received %v, want the second host_down only", kinds(second))
	}
	// The host_down that fired is the one of the fourth scan, not the flap's.
	var downs []int64
	for _, e := range recv.events("every-down") {
		if e.Event == "host_down" {
			downs = append(downs, e.ID)
		}
	}
	if second[0].ID != downs[1] {
		t.Fatalf("down_after_scans 2 sent change %d, want %d", second[0].ID, downs[1])
	}
	// The Slack text has a line per event.
	recv.mu.Lock()
	for _, id := range recv.order {
		var p webhooks.Payload
		_ = json.Unmarshal(recv.bodies[id], &p)
		if n := len(strings.Split(p.Text, "\n")); n != len(p.Events) || !strings.Contains(p.Text, "10.99.9.") {
			t.Errorf("slack text %q for %d events", p.Text, len(p.Events))
		}
	}
	recv.mu.Unlock()

	// Every delivery of "dead-letters" failed: the first is dead after two
	// attempts, the others wait behind it.
	var dead []*pb.WebhookDelivery
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := s.admin.ListWebhookDeliveries(s.ctx(), &pb.ListWebhookDeliveriesRequest{
			WebhookId: deadID, State: pb.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DEAD})
		if err != nil {
			t.Fatal(err)
		}
		if dead = resp.GetDeliveries(); len(dead) > 0 {
			break
		}
	}
	if len(dead) != 1 || dead[0].GetAttempts() != 2 || !strings.Contains(dead[0].GetLastError(), "500") {
		t.Fatalf("dead deliveries: %v", dead)
	}
	list, err := s.admin.ListWebhooks(s.ctx(), &pb.ListWebhooksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range list.GetWebhooks() {
		if w.GetName() == "dead-letters" && w.GetDeadDeliveries() != 1 {
			t.Fatalf("ListWebhooks: %v", w)
		}
	}
	recv.failing.Store(false)
	time.Sleep(500 * time.Millisecond)
	if got := recv.events("dead-letters"); len(got) != 0 {
		t.Fatalf("a dead delivery let %d later events through", len(got))
	}
	redo, err := s.admin.RetryWebhookDeliveries(s.ctx(), &pb.RetryWebhookDeliveriesRequest{WebhookId: deadID})
	if err != nil || redo.GetRedriven() != 1 {
		t.Fatalf("re-drive: %v, %v", redo, err)
	}
	want := historyIDs(t, s)
	got := eventIDs(recv.waitEvents(t, "dead-letters", len(want), time.Minute))
	if !slices.Equal(got, want) {
		t.Fatalf("after re-drive received %v, want %v", got, want)
	}
}

// Bad webhooks get INVALID_ARGUMENT naming the field and write nothing.
func TestCreateWebhookRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	setupTarget(t, s, "10.99.10.0/24", "22")
	ok := func() *pb.CreateWebhookRequest {
		return &pb.CreateWebhookRequest{Name: "hook", Url: "http://127.0.0.1:9/hook"}
	}
	for _, c := range []struct {
		field string
		edit  func(r *pb.CreateWebhookRequest)
	}{
		{"name", func(r *pb.CreateWebhookRequest) { r.Name = "Bad Name" }},
		{"url", func(r *pb.CreateWebhookRequest) { r.Url = "" }},
		{"url", func(r *pb.CreateWebhookRequest) { r.Url = "ftp://127.0.0.1/x" }},
		{"url", func(r *pb.CreateWebhookRequest) { r.Url = "http:///nohost" }},
		{"url", func(r *pb.CreateWebhookRequest) { r.Url = "http://user:pw@127.0.0.1/" }},
		{"events", func(r *pb.CreateWebhookRequest) { r.Events = []string{"port_ajar"} }},
		{"events", func(r *pb.CreateWebhookRequest) { r.Events = []string{"host_up", "host_up"} }},
		{"secret", func(r *pb.CreateWebhookRequest) { r.Secret = "short" }},
		{"down_after_scans", func(r *pb.CreateWebhookRequest) { r.DownAfterScans = 101 }},
		{"down_after_scans", func(r *pb.CreateWebhookRequest) { r.DownAfterScans = -1 }},
		{"format", func(r *pb.CreateWebhookRequest) { r.Format = 9 }},
		{"target_id", func(r *pb.CreateWebhookRequest) { r.TargetId = "nope" }},
	} {
		req := ok()
		c.edit(req)
		_, err := s.admin.CreateWebhook(s.ctx(), req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: %v; want InvalidArgument naming %s", req, err, c.field)
		}
	}
	if _, err := s.admin.CreateWebhook(s.ctx(), &pb.CreateWebhookRequest{Name: "hook", Url: "http://127.0.0.1:9/", Site: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown site: %v", err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"webhook_id", func() error {
			_, err := s.admin.ListWebhookDeliveries(s.ctx(), &pb.ListWebhookDeliveriesRequest{WebhookId: "x"})
			return err
		}},
		{"webhook_id", func() error {
			_, err := s.admin.RetryWebhookDeliveries(s.ctx(), &pb.RetryWebhookDeliveriesRequest{})
			return err
		}},
		{"id", func() error {
			_, err := s.admin.DeleteWebhook(s.ctx(), &pb.DeleteWebhookRequest{Id: "x"})
			return err
		}},
	} {
		if err := c.call(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if n := s.count(`SELECT count(*) FROM webhooks`); n != 0 {
		t.Fatalf("%d webhooks written by bad requests", n)
	}
	// A good one, listed, then deleted.
	resp, err := s.admin.CreateWebhook(s.ctx(), ok())
	if err != nil || len(resp.GetSecret()) != 64 || resp.GetWebhook().GetDownAfterScans() != 1 {
		t.Fatalf("create: %v, %v", resp, err)
	}
	if _, err := s.admin.DeleteWebhook(s.ctx(), &pb.DeleteWebhookRequest{Id: resp.GetWebhook().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.DeleteWebhook(s.ctx(), &pb.DeleteWebhookRequest{Id: resp.GetWebhook().GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("second delete: %v", err)
	}
}
