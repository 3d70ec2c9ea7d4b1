package calendar

import (
	"strings"
	"testing"
	"time"
)

func TestParseDaysAndClock(t *testing.T) {
	t.Parallel()
	days := []struct {
		in, canon string
		err       string
	}{
		{"", "*", ""},
		{"*", "*", ""},
		{"mon-fri", "mon-fri", ""},
		{"1-5", "mon-fri", ""},
		{"sat,sun", "sat,sun", ""},
		{"fri-sun", "fri-sun", ""},
		{"0,6", "sat,sun", ""},
		{"7", "sun", ""},
		{"MON, WED", "mon,wed", ""},
		{"mon-wed,fri", "mon-wed,fri", ""},
		{"sun-sat", "*", ""},
		{"mun", "", `"mun" is neither a number nor a name (sun-sat)`},
		{"8", "", "8 is out of range 0-7"},
		{"fri-mon", "", "runs backwards"},
	}
	for _, tc := range days {
		got, err := ParseDays(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDays(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDays(%q): %v", tc.in, err)
			continue
		}
		if s := (Window{Days: got}).DaysString(); s != tc.canon {
			t.Errorf("ParseDays(%q) renders as %q, want %q", tc.in, s, tc.canon)
		}
	}
	clocks := []struct {
		in  string
		end bool
		min int
		err bool
	}{
		{"22:00", false, 1320, false}, {"6:05", false, 365, false}, {"00:00", false, 0, false}, {"23:59", false, 1439, false},
		{"24:00", true, 0, false}, {"24:00", false, 0, true}, {"24:30", true, 0, true}, {"7", false, 0, true},
		{"07:60", false, 0, true}, {"7:5", false, 0, true}, {"", false, 0, true}, {"ab:cd", false, 0, true}, {"-1:00", false, 0, true},
	}
	for _, tc := range clocks {
		got, err := ParseClock(tc.in, tc.end)
		if (err != nil) != tc.err || (!tc.err && got != tc.min) {
			t.Errorf("ParseClock(%q, %v) = %d, %v", tc.in, tc.end, got, err)
		}
	}
}

func TestWindowAt(t *testing.T) {
	t.Parallel()
	berlin := zone(t, "Europe/Berlin")
	at := func(s string) time.Time { // local Berlin time
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	nights := Window{Days: 0b0111110, Start: 22 * 60, End: 6 * 60} // Mon-Fri 22:00-06:00
	allWeek24 := Window{Days: 0b0111110, Start: 0, End: 0}         // Mon-Fri, 24 hours from midnight
	earlyHours := Window{Days: AllDays, Start: 60, End: 5 * 60}    // every day 01:00-05:00
	cases := []struct {
		name          string
		w             Window
		t             string
		inside        bool
		opens, closes string
	}{
		// 2026-11-28 is a Saturday, 2026-11-30 a Monday.
		{"Saturday noon: closed until Monday night", nights, "2026-11-28 12:00", false, "2026-11-30 22:00", "2026-12-01 06:00"},
		{"Saturday 03:00: Friday's opening", nights, "2026-11-28 03:00", true, "2026-11-27 22:00", "2026-11-28 06:00"},
		{"Saturday 06:00: just closed", nights, "2026-11-28 06:00", false, "2026-11-30 22:00", "2026-12-01 06:00"},
		{"Monday 05:00: Sunday has no opening", nights, "2026-11-30 05:00", false, "2026-11-30 22:00", "2026-12-01 06:00"},
		{"Monday 22:00: opens", nights, "2026-11-30 22:00", true, "2026-11-30 22:00", "2026-12-01 06:00"},
		{"Tuesday 23:30", nights, "2026-12-01 23:30", true, "2026-12-01 22:00", "2026-12-02 06:00"},
		{"back-to-back days merge", allWeek24, "2026-12-02 12:00", true, "2026-11-30 00:00", "2026-12-05 00:00"},
		{"Sunday: closed", allWeek24, "2026-11-29 12:00", false, "2026-11-30 00:00", "2026-12-05 00:00"},
		// Spring forward 2026-03-29 02:00 -> 03:00: the opening is an hour shorter.
		{"DST night, before", earlyHours, "2026-03-29 00:30", false, "2026-03-29 01:00", "2026-03-29 05:00"},
		{"DST night, inside", earlyHours, "2026-03-29 03:30", true, "2026-03-29 01:00", "2026-03-29 05:00"},
	}
	for _, tc := range cases {
		inside, opens, closes := tc.w.At(at(tc.t), berlin)
		if inside != tc.inside || !opens.Equal(at(tc.opens)) || !closes.Equal(at(tc.closes)) {
			t.Errorf("%s: At(%s) = %v, %s, %s; want %v, %s, %s", tc.name, tc.t, inside, opens.In(berlin), closes.In(berlin), tc.inside, tc.opens, tc.closes)
		}
	}
	if _, _, closes := earlyHours.At(at("2026-03-29 03:30"), berlin); closes.Sub(at("2026-03-29 01:00")) != 3*time.Hour {
		t.Errorf("the DST night's opening lasts %s, want 3h", closes.Sub(at("2026-03-29 01:00")))
	}
	always := Window{Days: AllDays, Start: 300, End: 300}
	if inside, _, closes := always.At(at("2026-11-29 12:00"), berlin); !always.AlwaysOpen() || !inside || !closes.IsZero() {
		t.Errorf("an always-open window: inside %v, closes %s", inside, closes)
	}
}

func TestLoadZone(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{"": "UTC", "UTC": "UTC", "Europe/Berlin": "Europe/Berlin", "America/Argentina/Buenos_Aires": "America/Argentina/Buenos_Aires"} {
		loc, err := LoadZone(name)
		if err != nil || loc.String() != want {
			t.Errorf("LoadZone(%q) = %v, %v", name, loc, err)
		}
	}
	for _, bad := range []string{"Local", "Mars/Olympus", "../etc/passwd", "/etc/localtime", "europe/berlin"} {
		if _, err := LoadZone(bad); err == nil {
			t.Errorf("LoadZone(%q) accepted", bad)
		}
	}
}
