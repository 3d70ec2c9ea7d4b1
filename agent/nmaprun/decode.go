package nmaprun

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	nmap "github.com/Ullaakut/nmap/v3"
)

// ErrTruncated reports nmap output that ended before </nmaprun>, typically
// because nmap was killed. Hosts completed before the cut have already been
// delivered; the partial host is not.
var ErrTruncated = errors.New("nmap XML output truncated")

// ErrNmapFailed reports that nmap's own run statistics say it failed
// (<finished exit="error">).
var ErrNmapFailed = errors.New("nmap reported an error")

var (
	errNoOutput   = errors.New("no nmap XML output")
	errNoRunStats = errors.New("nmap output has no run statistics")
)

// outputEnded reports whether a Decode result means nmap's output is over:
// the document was complete, or its stdout reached end of file. nmap is then
// exiting on its own and must not be killed, which would mask its exit status.
func outputEnded(err error) bool {
	return err == nil || errors.Is(err, ErrNmapFailed) || errors.Is(err, errNoRunStats) ||
		errors.Is(err, ErrTruncated) || errors.Is(err, errNoOutput)
}

// eventError wraps an error returned by [Events.Host].
type eventError struct {
	addr string
	err  error
}

func (e *eventError) Error() string { return "handling host " + e.addr + ": " + e.err.Error() }
func (e *eventError) Unwrap() error { return e.err }

// Decode reads nmap's XML report (-oX) from r and streams it to ev: each
// <host> is converted and passed to [Events.Host] as soon as its element is
// complete, and progress is reported from nmap's task elements. Nothing is
// accumulated, so memory use does not grow with the number of hosts.
//
// expectedHosts is the number of target addresses, or 0 if unknown; it only
// refines progress estimates (see [Job]).
//
// Decode returns when </nmaprun> has been read, r fails, ctx is done (checked
// between elements; a Read that blocks is not interrupted) or ev.Host returns
// an error. Output that stops early yields an error wrapping [ErrTruncated];
// a run nmap itself reports as failed yields an error wrapping
// [ErrNmapFailed]. The Summary holds whatever was learned before the error.
func Decode(ctx context.Context, r io.Reader, expectedHosts uint64, ev Events) (Summary, error) {
	if ev == nil {
		return Summary{}, errors.New("nmaprun: Decode called with nil Events")
	}
	br := &budgetReader{r: r}
	d := &decoder{ctx: ctx, ev: ev, br: br, xd: xml.NewDecoder(br), expected: expectedHosts}
	err := d.run()
	return d.sum, err
}

type decoder struct {
	ctx      context.Context
	ev       Events
	br       *budgetReader
	xd       *xml.Decoder
	expected uint64
	progress *progressModel // nil until <nmaprun> is seen
	sum      Summary
}

func (d *decoder) run() error {
	for {
		if err := d.ctx.Err(); err != nil {
			return fmt.Errorf("decoding nmap output: %w", err)
		}
		d.br.reset(maxTokenBytes)
		tok, err := d.xd.Token()
		if err != nil {
			if d.progress == nil && errors.Is(err, io.EOF) {
				return errNoOutput
			}
			return d.readErr("nmap output", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if d.progress == nil {
				if err := d.begin(t); err != nil {
					return err
				}
				continue
			}
			if err := d.child(t); err != nil {
				return err
			}
		case xml.EndElement:
			// Every child of <nmaprun> is consumed whole, so this is </nmaprun>.
			return d.end()
		}
	}
}

// begin handles the root element.
func (d *decoder) begin(t xml.StartElement) error {
	if t.Name.Local != "nmaprun" {
		return fmt.Errorf("decoding nmap output: unexpected root element <%s>", cleanField(t.Name.Local))
	}
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "version":
			d.sum.NmapVersion = cleanField(a.Value)
		case "args":
			if f := strings.Fields(clean(a.Value, false)); len(f) > 0 {
				d.sum.Args = f[1:]
			}
		}
	}
	d.progress = newProgressModel(d.sum.Args, d.expected)
	d.reportProgress()
	return nil
}

// child handles one direct child element of <nmaprun>, consuming it whole.
func (d *decoder) child(t xml.StartElement) error {
	switch t.Name.Local {
	case "host":
		return d.host(t)
	case "taskbegin", "taskend":
		var task nmap.Task
		if err := d.xd.DecodeElement(&task, &t); err != nil {
			return d.readErr("<"+t.Name.Local+">", err)
		}
		kind := taskBegin
		if t.Name.Local == "taskend" {
			kind = taskEnd
		}
		d.progress.task(task.Task, kind, 0)
		d.reportProgress()
	case "taskprogress":
		var tp nmap.TaskProgress
		if err := d.xd.DecodeElement(&tp, &t); err != nil {
			return d.readErr("<taskprogress>", err)
		}
		d.progress.task(tp.Task, taskProgress, float64(tp.Percent))
		d.reportProgress()
	case "scaninfo":
		var si nmap.ScanInfo
		if err := d.xd.DecodeElement(&si, &t); err != nil {
			return d.readErr("<scaninfo>", err)
		}
		switch strings.ToLower(si.Protocol) {
		case "tcp":
			d.sum.ScannedTCP = clean(si.Services, false)
		case "udp":
			d.sum.ScannedUDP = clean(si.Services, false)
		}
	case "runstats":
		var st nmap.Stats
		if err := d.xd.DecodeElement(&st, &t); err != nil {
			return d.readErr("<runstats>", err)
		}
		d.sum.HostsUp, d.sum.HostsDown, d.sum.HostsTotal = st.Hosts.Up, st.Hosts.Down, st.Hosts.Total
		d.sum.Elapsed = secondsToDuration(st.Finished.Elapsed)
		d.sum.Exit = cleanField(st.Finished.Exit)
		d.sum.ErrorMsg = cleanOutput(st.Finished.ErrorMsg)
	default:
		// verbose, debugging, target, hosthint, prescript, postscript, output.
		if err := d.xd.Skip(); err != nil {
			return d.readErr("<"+cleanField(t.Name.Local)+">", err)
		}
	}
	return nil
}

func (d *decoder) host(t xml.StartElement) error {
	d.br.reset(maxHostBytes)
	var nh nmap.Host
	if err := d.xd.DecodeElement(&nh, &t); err != nil {
		return d.readErr("<host>", err)
	}
	h, ok := convertHost(&nh)
	if !ok {
		return nil
	}
	if err := d.ev.Host(d.ctx, h); err != nil {
		return &eventError{addr: h.Address.String(), err: err}
	}
	d.sum.HostsReported++
	d.progress.host()
	d.reportProgress()
	return nil
}

// end handles </nmaprun>.
func (d *decoder) end() error {
	switch d.sum.Exit {
	case "success":
		d.progress.finish()
		d.reportProgress()
		return nil
	case "":
		return errNoRunStats
	default:
		msg := d.sum.ErrorMsg
		if msg == "" {
			msg = "exit=" + d.sum.Exit
		}
		return fmt.Errorf("%w: %s", ErrNmapFailed, msg)
	}
}

func (d *decoder) reportProgress() {
	if p, ok := d.progress.percent(); ok {
		d.ev.Progress(p)
	}
}

// readErr wraps an error from the XML decoder, mapping premature ends of
// input to ErrTruncated.
func (d *decoder) readErr(what string, err error) error {
	var se *xml.SyntaxError
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &se) && se.Msg == "unexpected EOF") {
		return fmt.Errorf("%w: reading %s: %w", ErrTruncated, what, err)
	}
	// The line names the place in the document for whoever has to fix it
	// (an imported file); syntax errors carry it already.
	if errors.As(err, &se) {
		return fmt.Errorf("decoding %s: %w", what, err)
	}
	line, _ := d.xd.InputPos()
	return fmt.Errorf("decoding %s ending at line %d: %w", what, line, err)
}

func secondsToDuration(s float32) time.Duration {
	if s <= 0 || s > float32(100*365*24*time.Hour/time.Second) {
		return 0
	}
	return time.Duration(float64(s) * float64(time.Second)).Round(time.Millisecond)
}
