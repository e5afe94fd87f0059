package azuritetest

import (
	"net/http"
	"strings"
	"testing"
)

func TestStartServesBlobAPI(t *testing.T) {
	a := Start(t)
	resp, err := http.Get(a.BlobEndpoint() + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Server"), "Azurite") {
		t.Fatalf("not Azurite: %v", resp.Header)
	}
	a.Stop()
	if _, err := http.Get(a.BlobEndpoint() + "?comp=list"); err == nil {
		t.Fatal("Azurite still answers after Stop")
	}
}
