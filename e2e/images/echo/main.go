// Command echo is the catalog Service the local stack's tests run on real nodes: an HTTP
// server that shows what Landlord handed its container, so a test can read it from inside
// the cluster.
//
//	GET /          {"env": {LANDLORD_* variables}, "headers": {X-Landlord-* request headers}}
//	GET /flags     the tenant's flags, as tenant-runtime's OFREP bulk evaluation at
//	               $LANDLORD_FLAGS_URL answers them (status and body passed through)
//	GET /healthz   ok (and every path under it, and /readyz and /livez: whatever a catalog
//	               Service's probes name)
//
// Listens on :8080, or $PORT, or where a `--listen=ADDR` argument says (other arguments
// are ignored: they are the real product's). Secrets among the variables (the database
// password and URL, NATS credentials) are shown only as "set", never their value.
//
// It is its own client too:
//
//	echo get URL [ATTEMPTS]        prints the body of a GET (a connection that fails is
//	                               tried ATTEMPTS times, default 30, a second apart, each
//	                               bounded by 10 s); fails unless the answer is 2xx, logging
//	                               `GET URL: <error>`
//	echo dial HOST:PORT [ATTEMPTS [WALL]]
//	                               only opens a TCP connection (each attempt bounded by
//	                               3 s), for servers that speak no HTTP; a failure logs
//	                               `DIAL HOST:PORT: <error>`. With WALL (an address that
//	                               answers, but not through the pod's egress policy), it
//	                               first waits until WALL is refused: a new pod's packets
//	                               pass unfiltered until its policy rules are in place
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
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
	if len(os.Args) == 5 && os.Args[1] == "dial" {
		// The pod's egress rules are in place once WALL stops answering: only then does
		// a connection to ADDR say anything about them.
		if code := refused(os.Args[4]); code != 0 {
			os.Exit(code)
		}
		os.Args = os.Args[:4]
	}
	if (len(os.Args) == 3 || len(os.Args) == 4) && (os.Args[1] == "get" || os.Args[1] == "dial") {
		attempts := 30
		if len(os.Args) == 4 {
			n, err := strconv.Atoi(os.Args[3])
			if err != nil || n < 1 {
				log.Fatalf("attempts: %q is not a positive number", os.Args[3])
			}
			attempts = n
		}
		if os.Args[1] == "dial" {
			os.Exit(dial(os.Args[2], attempts))
		}
		os.Exit(get(os.Args[2], attempts))
	}
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	// A catalog Service's args may name where to listen (the examples' orders-api does);
	// other flags are the product's and mean nothing here.
	for _, arg := range os.Args[1:] {
		if a, ok := strings.CutPrefix(arg, "--listen="); ok {
			addr = a
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	healthy := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
	for _, path := range []string{"/healthz", "/healthz/", "/readyz", "/livez"} {
		mux.HandleFunc("GET "+path, healthy)
	}
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

// dial opens a TCP connection to addr (host:port), trying a failed attempt again a second
// later, each bounded by 3 s; prints "connected to ADDR" and closes it. A failure logs
// `DIAL ADDR: <error>`.
func dial(addr string, attempts int) int {
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		var conn net.Conn
		if conn, err = net.DialTimeout("tcp", addr, 3*time.Second); err == nil {
			conn.Close()
			fmt.Printf("connected to %s\n", addr)
			return 0
		}
		time.Sleep(time.Second)
	}
	log.Printf("DIAL %s: %v", addr, err)
	return 1
}

// refused waits (up to 30 s) until a connection to wall fails, each attempt bounded by 1 s;
// 2 when wall still answers then, logging `WALL ADDR still answers`.
func refused(wall string) int {
	for attempt := 0; attempt < 30; attempt++ {
		conn, err := net.DialTimeout("tcp", wall, time.Second)
		if err != nil {
			return 0
		}
		conn.Close()
		time.Sleep(time.Second)
	}
	log.Printf("WALL %s still answers: the pod's network policy is not in place", wall)
	return 2
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
