package msapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// decodePage collects a page's records, for the tests of decodeRecords.
func decodePage(body []byte) ([]json.RawMessage, string, error) {
	var values []json.RawMessage
	next, err := decodeRecords(bytes.NewReader(body), 0, func(raw json.RawMessage) error {
		values = append(values, raw)
		return nil
	})
	return values, next, err
}

func TestDecodePage(t *testing.T) {
	body := []byte(`{
	  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/incidents",
	  "@odata.nextLink": "https://graph.microsoft.com/v1.0/security/incidents?$skiptoken=x",
	  "value" : [ {"id":"1","alerts":[{"id":"a"},{"id":"b"}]} ,
	    {"id":"2","s":"[,]\"}"} , 7, "str", null ],
	  "extra": {"nested": [1, 2, {"value": []}]}
	}`)
	values, next, err := decodePage(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"id":"1","alerts":[{"id":"a"},{"id":"b"}]}`, `{"id":"2","s":"[,]\"}"}`, `7`, `"str"`, `null`}
	if len(values) != len(want) {
		t.Fatalf("got %d values: %q", len(values), values)
	}
	for i := range want {
		if string(values[i]) != want[i] {
			t.Errorf("value %d = %s, want %s", i, values[i], want[i])
		}
	}
	if next != "https://graph.microsoft.com/v1.0/security/incidents?$skiptoken=x" {
		t.Fatalf("next = %q", next)
	}

	if values, _, err := decodePage([]byte(`{"value":[]}`)); err != nil || len(values) != 0 {
		t.Fatalf("empty page: %v %v", values, err)
	}
	for _, bad := range []string{``, `[]`, `{"value":{}}`, `{"value":[1,]}`, `{"value":[1]`, `{"other":1}`, `{"value":[1]} trailing`} {
		if _, _, err := decodePage([]byte(bad)); err == nil && bad != `{"value":[1]} trailing` {
			t.Errorf("decodePage(%q) accepted", bad)
		}
	}
}

// FuzzDecodePage checks the streaming decoder against encoding/json on arbitrary input.
func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"value":[{"a":1}, [2], "x"],"@odata.nextLink":"n"}`))
	f.Add([]byte(`{"value":[]}`))
	f.Add([]byte(`{"value":[ {"a":"\u00e9,"} ] ,"b":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		values, next, err := decodePage(body)
		if err != nil {
			return
		}
		// OData keys are case-sensitive, unlike encoding/json's struct fields: compare with a map.
		var obj map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("decodePage accepted what encoding/json rejects: %v", err)
		}
		var ref struct {
			Value    []json.RawMessage
			NextLink string
		}
		if err := json.Unmarshal(obj["value"], &ref.Value); err != nil {
			t.Fatalf("decodePage accepted a value encoding/json rejects: %v", err)
		}
		if raw, ok := obj["@odata.nextLink"]; ok {
			if err := json.Unmarshal(raw, &ref.NextLink); err != nil {
				t.Fatalf("decodePage accepted a nextLink encoding/json rejects: %v", err)
			}
		}
		if len(ref.Value) != len(values) || ref.NextLink != next {
			t.Fatalf("got %d values next %q, encoding/json %d values next %q", len(values), next, len(ref.Value), ref.NextLink)
		}
		for i := range values {
			if !bytes.Equal(bytes.TrimSpace(ref.Value[i]), values[i]) {
				t.Fatalf("value %d: %q vs %q", i, values[i], ref.Value[i])
			}
		}
	})
}

// TestRecordLimitBoundsEachRecordNotThePage: a page far larger than the limit streams through
// when every record fits, and a single record over the limit fails.
func TestRecordLimitBoundsEachRecordNotThePage(t *testing.T) {
	var page bytes.Buffer
	page.WriteString(`{"@odata.nextLink":"n","value":[`)
	for i := range 2000 {
		if i > 0 {
			page.WriteString(",")
		}
		page.WriteString(`{"id":"` + strings.Repeat("x", 500) + `"}`)
	}
	page.WriteString(`]}`)
	n := 0
	next, err := decodeRecords(bytes.NewReader(page.Bytes()), 4096, func(json.RawMessage) error { n++; return nil })
	if err != nil || n != 2000 || next != "n" {
		t.Fatalf("a 1 MB page of 500-byte records with a 4 KiB record limit: %d records, next %q, err %v", n, next, err)
	}
	big := `{"value":[{"id":"a"},{"id":"` + strings.Repeat("x", 10000) + `"}]}`
	n = 0
	_, err = decodeRecords(strings.NewReader(big), 4096, func(json.RawMessage) error { n++; return nil })
	if !errors.Is(err, ErrBodyTooLarge) || n != 1 {
		t.Fatalf("a 10 KB record with a 4 KiB limit: %d records before, err %v", n, err)
	}
}
