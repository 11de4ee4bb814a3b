package schema_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/report/schema"
)

func TestVersionMatchesReport(t *testing.T) {
	if report.JSONSchemaVersion != schema.Version {
		t.Errorf("report.JSONSchemaVersion = %d, schema.Version = %d: change report.schema.json with the document", report.JSONSchemaVersion, schema.Version)
	}
	var s struct {
		Properties struct {
			SchemaVersion struct {
				Const int `json:"const"`
			} `json:"schema_version"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema.File, &s); err != nil {
		t.Fatal(err)
	}
	if s.Properties.SchemaVersion.Const != schema.Version {
		t.Errorf("report.schema.json says schema_version %d, schema.Version is %d", s.Properties.SchemaVersion.Const, schema.Version)
	}
}

// TestRejects proves the validator can fail: each document breaks one rule
// a consumer relies on.
func TestRejects(t *testing.T) {
	good := `{"schema_version":1,"finished":"2026-11-24T01:02:03Z","duration_s":0.5,"exit_code":0,` +
		`"totals":{"ok":1,"changed":0,"drift":0,"missing":0,"failed":0,"skipped":0,"unreachable":0},` +
		`"hosts":[{"name":"rb1","unreachable":false,"recap":{"ok":1,"changed":0,"drift":0,"missing":0,"failed":0,"skipped":0,"unreachable":0},` +
		`"ssh":{"connections":1,"sessions":1},"results":[{"host":"rb1","step":"dir /x","status":"ok","duration_ns":5},` +
		`{"host":"rb1","step":"file /y","status":"drift","drifted":[{"property":"mode","expected":"0640","found":"0644"}],"duration_ns":5}]}]}`
	if err := schema.Validate([]byte(good)); err != nil {
		t.Fatalf("good document refused: %v", err)
	}
	for name, c := range map[string][2]string{
		"no schema_version":    {`"schema_version":1,`, ``},
		"other version":        {`"schema_version":1`, `"schema_version":2`},
		"unknown status":       {`"status":"ok"`, `"status":"fine"`},
		"unknown field":        {`"name":"rb1"`, `"name":"rb1","role":"base"`},
		"negative count":       {`"sessions":1`, `"sessions":-1`},
		"missing total":        {`"totals":{"ok":1,`, `"totals":{`},
		"local time":           {`01:02:03Z`, `01:02:03+01:00`},
		"bad exit code":        {`"exit_code":0`, `"exit_code":4`},
		"two documents":        {`]}]}`, `]}]}{}`},
		"drifted, no property": {`{"property":"mode",`, `{`},
		"drifted, empty":       {`[{"property":"mode","expected":"0640","found":"0644"}]`, `[]`},
		"drifted, extra field": {`"found":"0644"}`, `"found":"0644","diff":""}`},
	} {
		bad := strings.Replace(good, c[0], c[1], 1)
		if bad == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if err := schema.Validate([]byte(bad)); err == nil {
			t.Errorf("%s: accepted:\n%s", name, bad)
		}
	}
}
