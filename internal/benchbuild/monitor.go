package benchbuild

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

var httpClient = &http.Client{Timeout: 5 * time.Second}

// Acked is libbeat.output.events.acked from a beat's monitoring endpoint (statsURL is
// http://<http.host>:<http.port>/stats): the documents its output has written.
func Acked(statsURL string) (int64, error) {
	var s struct {
		Libbeat struct {
			Output struct {
				Events struct {
					Acked int64 `json:"acked"`
				} `json:"events"`
			} `json:"output"`
		} `json:"libbeat"`
	}
	if err := GetJSON(statsURL, &s); err != nil {
		return 0, err
	}
	return s.Libbeat.Output.Events.Acked, nil
}

// GetJSON decodes the JSON a monitoring URL answers.
func GetJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}
