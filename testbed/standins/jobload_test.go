package standins

import (
	"reflect"
	"testing"
	"time"
)

func TestParseSubmitLogAndCheckJobs(t *testing.T) {
	log := "3000 4000 p-2 FAIL dial tcp 198.18.1.200:7772: connect: connection refused\n" +
		"1000 2000 p-1 OK rb1 sandbox-p-1-aa\n" +
		"5000 9000 p-3 OK rb2 sandbox-p-3-bb\n" +
		"6000 7000 p-4 OK rb2 sandbox-p-4-cc\n"
	as, err := ParseSubmitLog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	if !reflect.DeepEqual(ids, []string{"p-1", "p-2", "p-4", "p-3"}) {
		t.Errorf("order by end: %v", ids)
	}
	if as[1].OK || as[1].Err != "dial tcp 198.18.1.200:7772: connect: connection refused" {
		t.Errorf("failed attempt: %+v", as[1])
	}
	if as[3].Node != "rb2" || as[3].Payload != "sandbox-p-3-bb" || as[3].Latency() != 4000*time.Nanosecond {
		t.Errorf("acknowledged attempt: %+v", as[3])
	}
	acked := Acked(as)
	if len(acked) != 3 {
		t.Fatalf("acked: %d", len(acked))
	}
	if a, ok := FirstAckAfter(as, time.Unix(0, 2500)); !ok || a.ID != "p-4" {
		t.Errorf("first ack of a request sent after 2500: %+v %v", a, ok)
	}
	if _, ok := FirstAckAfter(as, time.Unix(0, 6500)); ok {
		t.Error("an acknowledgement of a request sent after the last one")
	}

	files := map[string]string{"p-1": "sandbox-p-1-aa", "p-3": "sandbox-p-3-XX", "p-2": "sandbox-p-2-zz"}
	rows := map[string]string{"p-1": "sandbox-p-1-aa", "p-3": "sandbox-p-3-bb", "p-4": "sandbox-p-4-cc"}
	want := []string{
		`p-3 (acknowledged by rb2): sandbox holds "sandbox-p-3-XX", want "sandbox-p-3-bb"`,
		"p-4 (acknowledged by rb2): sandbox file missing",
	}
	if got := CheckJobs(acked, files, rows); !reflect.DeepEqual(got, want) {
		t.Errorf("CheckJobs:\n%q\nwant\n%q", got, want)
	}
	delete(rows, "p-1")
	if got := CheckJobs(acked[:1], files, rows); !reflect.DeepEqual(got, []string{"p-1 (acknowledged by rb1): L&B row missing"}) {
		t.Errorf("CheckJobs, row missing: %q", got)
	}

	for _, bad := range []string{"1 2 p-1 OK rb1\n", "x 2 p-1 FAIL no\n", "1 2 p-1 MAYBE\n", "1 2\n"} {
		if _, err := ParseSubmitLog([]byte(bad)); err == nil {
			t.Errorf("ParseSubmitLog(%q): no error", bad)
		}
	}
}
