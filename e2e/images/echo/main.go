// Command echo is the catalog Service the local stack's tests run on real nodes: an HTTP
// server that shows what Landlord handed its container, so a test can read it from inside
// the cluster.
//
//	GET /          {"env": {LANDLORD_* variables}, "headers": {X-Landlord-* request headers}}
//	GET /flags     the tenant's flags, as tenant-runtime's OFREP bulk evaluation at
//	               $LANDLORD_FLAGS_URL answers them (status and body passed through)
//	GET /healthz   ok (and every path under it, whatever a catalog Service's probes name)
//
// Listens on :8080 (or $PORT). `echo get URL [ATTEMPTS]` is its client instead: prints the
// body of a GET (trying a connection that fails ATTEMPTS times, default 30, each attempt
// bounded by 10 s, a second apart), and fails unless the answer is 2xx; a failure logs
// `GET URL: <error>`. Secrets among the variables (the database password and URL, NATS
// credentials) are shown only as "set", never their value.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

var secret = map[string]bool{
	"LANDLORD_DATABASE_PASSWORD": true,
	"LANDLORD_DATABASE_URL":      true,
	"LANDLORD_NATS_CREDS":        true,
	"LANDLORD_TENANT_KEY":        true,
}

func main() {
	if (len(os.Args) == 3 || len(os.Args) == 4) && os.Args[1] == "get" {
		attempts := 30
		if len(os.Args) == 4 {
			n, err := strconv.Atoi(os.Args[3])
			if err != nil || n < 1 {
				log.Fatalf("attempts: %q is not a positive number", os.Args[3])
			}
			attempts = n
		}
		os.Exit(get(os.Args[2], attempts))
	}
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	client := &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	healthy := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	mux.HandleFunc("GET /healthz", healthy)
	mux.HandleFunc("GET /healthz/", healthy)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(k, "LANDLORD_") {
				continue
			}
			if secret[k] || strings.HasPrefix(k, "LANDLORD_TENANT_KEY") {
				v = "set"
			}
			env[k] = v
		}
		headers := map[string]string{}
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-landlord-") {
				headers[k] = strings.Join(v, ",")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"env": env, "headers": headers})
	})
	mux.HandleFunc("GET /flags", func(w http.ResponseWriter, r *http.Request) {
		base := os.Getenv("LANDLORD_FLAGS_URL")
		if base == "" {
			http.Error(w, "LANDLORD_FLAGS_URL is not set", http.StatusNotFound)
			return
		}
		body := strings.NewReader(`{"context":{"targetingKey":"echo"}}`)
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
			strings.TrimSuffix(base, "/")+"/ofrep/v1/evaluate/flags", body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-landlord-") {
				req.Header[k] = v
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "tenant-runtime: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	server := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on %s", addr)
	log.Fatal(server.ListenAndServe())
}

// get retries a refused or unanswered connection for up to 30 s: a new pod's network (its
// NetworkPolicy rules, its Service endpoints) can take a moment to be in place.
func get(url string, attempts int) int {
	client := &http.Client{Timeout: 10 * time.Second}
	var resp *http.Response
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if resp, err = client.Get(url); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		log.Printf("GET %s: %v", url, err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode/100 != 2 {
		log.Printf("GET %s: %s", url, resp.Status)
		return 1
	}
	return 0
}
