// Package schema holds the JSON Schema (draft 2020-12) of `--output json`
// (report.schema.json, the file consumers should use) and a validator the
// tests run on every JSON report they produce.
//
// The validator is github.com/santhosh-tekuri/jsonschema/v6: it passes the
// official JSON-Schema-Test-Suite for every draft, has no dependencies
// beyond golang.org/x/text, and is only linked into test binaries (gridha
// itself never validates its own output).
package schema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// File is report.schema.json as shipped in the repository.
//
//go:embed report.schema.json
var File []byte

// Version is the schema_version this schema describes (report.JSONSchemaVersion
// must equal it; a test checks).
const Version = 1

const url = "https://github.com/gridha/gridha/report/schema/report.schema.json"

// Compile returns the compiled schema.
func Compile() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(File))
	if err != nil {
		return nil, fmt.Errorf("report.schema.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("report.schema.json: %w", err)
	}
	return c.Compile(url)
}

// Validate checks one JSON report (what --output json wrote on stdout)
// against the schema; the error lists every violation with its JSON
// pointer.
func Validate(report []byte) error {
	sch, err := Compile()
	if err != nil {
		return err
	}
	var dec any
	d := json.NewDecoder(bytes.NewReader(report))
	d.UseNumber()
	if err := d.Decode(&dec); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if d.More() {
		return fmt.Errorf("more than one JSON document")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(report))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("report does not match report.schema.json: %w", err)
	}
	return nil
}
