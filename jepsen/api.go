package jepsen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiPrefix is the storage API prefix of SPEC §3.
const apiPrefix = "/api/storage/v0"

// API is the harness's HTTP client for osprey. It speaks to any node by
// base URL ("http://10.213.7.3:8080") and never retries on its own: every
// request is one op in the history.
type API struct {
	hc  *http.Client
	key string
}

// NewAPI returns a client that dials with dial (nil = the default dialer)
// and sends key as the Bearer API key on business endpoints.
func NewAPI(dial func(ctx context.Context, network, addr string) (net.Conn, error), key string) *API {
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// A short dial timeout turns a partitioned or dead node into a
			// quick definite failure (nothing was sent).
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return dial(ctx, network, addr)
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by each request's context
		DisableCompression:    true,
	}
	return &API{hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, key: key}
}

// TrustCA makes https requests verify nodes against the CA in caPEM
// (the run's own CA with --tls). A failed TLS handshake counts as a
// failed dial: the request was certainly not sent.
func (a *API) TrustCA(caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("jepsen: no certificate in the CA PEM")
	}
	tr := a.hc.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(addr)
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("tls handshake: %w", err)}
		}
		return c, nil
	}
	return nil
}

// Close drops idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// Reply is a decoded JSON envelope plus the HTTP status.
type Reply struct {
	Status  int
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Header  http.Header     `json:"-"`
}

// RequestError is a request that got no HTTP response. Sent reports
// whether the request may have reached the server: a failed dial means it
// certainly did not.
type RequestError struct {
	Err  error
	Sent bool
}

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// StatusError is a non-2xx reply.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("http %d: %s", e.Status, e.Message)
}

// Classify maps a request's result to a history outcome: 2xx → ok;
// 503, 4xx and refused dials → fail (certainly not applied); 504, other
// 5xx, timeouts and resets after sending → info (unknown).
func Classify(err error) (Outcome, int) {
	if err == nil {
		return OK, 0
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch {
		case se.Status == http.StatusServiceUnavailable:
			return Fail, se.Status
		case se.Status >= 500:
			return Info, se.Status
		case se.Status >= 400:
			return Fail, se.Status
		}
		return Info, se.Status
	}
	var re *RequestError
	if errors.As(err, &re) && !re.Sent {
		return Fail, 0
	}
	return Info, 0
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// do sends one request and decodes the envelope of any reply.
func (a *API) do(ctx context.Context, method, rawURL string, body io.Reader, ctype string, auth bool) (*Reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, &RequestError{Err: err}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, &RequestError{Err: err, Sent: !isDialError(err)}
	}
	defer resp.Body.Close()
	rep := &Reply{Status: resp.StatusCode, Header: resp.Header}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, &RequestError{Err: fmt.Errorf("reading reply: %w", err), Sent: true}
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if jerr := json.Unmarshal(b, rep); jerr != nil && resp.StatusCode < 300 {
			return rep, &StatusError{Status: resp.StatusCode, Message: "undecodable reply: " + truncate(string(b), 200)}
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := rep.Message
		if msg == "" {
			msg = truncate(strings.TrimSpace(string(b)), 200)
		}
		return rep, &StatusError{Status: resp.StatusCode, Message: msg}
	}
	return rep, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// LinkItem is one entry of POST /link/upload's reply.
type LinkItem struct {
	UID  string `json:"uid"`
	Path string `json:"path"`
	URL  struct {
		Single string `json:"single"`
		Multi  struct {
			Upload string `json:"upload"`
			Merge  string `json:"merge"`
		} `json:"multi"`
	} `json:"url"`
}

// Link creates uids and signed upload links for paths.
func (a *API) Link(ctx context.Context, base string, paths []string) ([]LinkItem, error) {
	body, _ := json.Marshal(map[string]any{"filePath": paths, "expire": 86400})
	rep, err := a.do(ctx, http.MethodPost, base+apiPrefix+"/link/upload", bytes.NewReader(body), "application/json", true)
	if err != nil {
		return nil, err
	}
	var items []LinkItem
	if err := json.Unmarshal(rep.Data, &items); err != nil {
		return nil, &StatusError{Status: rep.Status, Message: "bad link reply: " + err.Error()}
	}
	if len(items) != len(paths) {
		return nil, &StatusError{Status: rep.Status, Message: fmt.Sprintf("link reply has %d items for %d paths", len(items), len(paths))}
	}
	return items, nil
}

func withParams(base, rel string, kv ...string) string {
	u := base + rel
	sep := "&"
	if !strings.Contains(rel, "?") {
		sep = "?"
	}
	for i := 0; i+1 < len(kv); i += 2 {
		u += sep + url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1])
		sep = "&"
	}
	return u
}

// Upload sends content with PUT /upload, as a raw body or as osproxy's
// multipart form.
func (a *API) Upload(ctx context.Context, base, link string, c Content, multipartForm bool) error {
	u := withParams(base, link, "md5", c.MD5())
	if !multipartForm {
		_, err := a.do(ctx, http.MethodPut, u, c.Reader(), "application/octet-stream", false)
		return err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", "upload.bin")
		if err == nil {
			_, err = io.Copy(fw, c.Reader())
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := a.do(ctx, http.MethodPut, u, pr, mw.FormDataContentType(), false)
	pr.Close()
	return err
}

// Chunk sends bytes [off, off+n) of c as chunk number num.
func (a *API) Chunk(ctx context.Context, base, link string, c Content, num int, off, n int64) error {
	u := withParams(base, link, "md5", c.RangeMD5(off, n), "chunkNum", strconv.Itoa(num))
	_, err := a.do(ctx, http.MethodPut, u, c.RangeReader(off, n), "application/octet-stream", false)
	return err
}

// Merge declares a chunked upload of c in num chunks complete.
func (a *API) Merge(ctx context.Context, base, link string, c Content, num int) error {
	u := withParams(base, link, "md5", c.MD5(), "num", strconv.Itoa(num), "size", strconv.FormatInt(c.Size, 10))
	_, err := a.do(ctx, http.MethodPut, u, nil, "", false)
	return err
}

// Checkpoint returns the chunk numbers stored for uid.
func (a *API) Checkpoint(ctx context.Context, base, uid string) ([]int, error) {
	rep, err := a.do(ctx, http.MethodGet, base+apiPrefix+"/checkpoint?uid="+url.QueryEscape(uid), nil, "", true)
	if err != nil {
		return nil, err
	}
	var ns []int
	if len(rep.Data) > 0 && string(rep.Data) != "null" {
		if err := json.Unmarshal(rep.Data, &ns); err != nil {
			return nil, &StatusError{Status: rep.Status, Message: "bad checkpoint reply: " + err.Error()}
		}
	}
	return ns, nil
}

// Resume asks whether content with md5 exists; it returns the new uid or "".
func (a *API) Resume(ctx context.Context, base, md5, path string) (string, error) {
	body, _ := json.Marshal(map[string]any{"data": []map[string]string{{"md5": md5, "path": path}}})
	rep, err := a.do(ctx, http.MethodPost, base+apiPrefix+"/resume", bytes.NewReader(body), "application/json", true)
	if err != nil {
		return "", err
	}
	var items []struct {
		MD5 string `json:"md5"`
		UID string `json:"uid"`
	}
	if err := json.Unmarshal(rep.Data, &items); err != nil || len(items) != 1 {
		return "", &StatusError{Status: rep.Status, Message: fmt.Sprintf("bad resume reply (%v): %s", err, truncate(string(rep.Data), 200))}
	}
	return items[0].UID, nil
}

// DownloadLink returns a signed download URL for uid. A per-item error
// (unknown or not complete) is returned as a 404 StatusError.
func (a *API) DownloadLink(ctx context.Context, base, uid string) (string, error) {
	body, _ := json.Marshal(map[string]any{"uid": []string{uid}, "expire": 86400})
	rep, err := a.do(ctx, http.MethodPost, base+apiPrefix+"/link/download", bytes.NewReader(body), "application/json", true)
	if err != nil {
		return "", err
	}
	var items []map[string]any
	if err := json.Unmarshal(rep.Data, &items); err != nil || len(items) != 1 {
		return "", &StatusError{Status: rep.Status, Message: fmt.Sprintf("bad download-link reply (%v): %s", err, truncate(string(rep.Data), 200))}
	}
	if u, _ := items[0]["url"].(string); u != "" {
		return u, nil
	}
	// A refusal that is not about the file (a node that is joining again
	// cannot yet vouch for the caller) says nothing about whether it
	// exists.
	if e, _ := items[0]["error"].(string); strings.Contains(e, "forbidden") {
		return "", &StatusError{Status: http.StatusForbidden, Message: fmt.Sprintf("download link refused: %v", items[0])}
	}
	return "", &StatusError{Status: http.StatusNotFound, Message: fmt.Sprintf("download link refused: %v", items[0])}
}

// Download GETs a signed URL with an optional Range header. The caller
// MUST close the body and call cancel.
func (a *API) Download(ctx context.Context, base, link, rng string, timeout time.Duration) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+link, nil)
	if err != nil {
		cancel()
		return nil, nil, &RequestError{Err: err}
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, &RequestError{Err: err, Sent: !isDialError(err)}
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		var env Reply
		msg := truncate(strings.TrimSpace(string(b)), 200)
		if json.Unmarshal(b, &env) == nil && env.Message != "" {
			msg = env.Message
		}
		return resp, nil, &StatusError{Status: resp.StatusCode, Message: msg}
	}
	return resp, cancel, nil
}

// ObjectInfo is GET /object's data.
type ObjectInfo struct {
	UID   string      `json:"uid"`
	Name  string      `json:"name"`
	Size  json.Number `json:"size"`
	MD5   string      `json:"md5"`
	State string      `json:"state"`
}

// Stat returns uid's metadata.
func (a *API) Stat(ctx context.Context, base, uid string) (*ObjectInfo, error) {
	rep, err := a.do(ctx, http.MethodGet, base+apiPrefix+"/object?uid="+url.QueryEscape(uid), nil, "", true)
	if err != nil {
		return nil, err
	}
	var oi ObjectInfo
	if err := json.Unmarshal(rep.Data, &oi); err != nil {
		return nil, &StatusError{Status: rep.Status, Message: "bad object reply: " + err.Error()}
	}
	return &oi, nil
}

// Delete deletes uid.
func (a *API) Delete(ctx context.Context, base, uid string) error {
	_, err := a.do(ctx, http.MethodDelete, base+apiPrefix+"/object?uid="+url.QueryEscape(uid), nil, "", true)
	return err
}

// Objects lists one page of objects.
func (a *API) Objects(ctx context.Context, base, cursor string, limit int) ([]ObjectName, string, error) {
	u := withParams(base, apiPrefix+"/objects", "cursor", cursor, "limit", strconv.Itoa(limit))
	rep, err := a.do(ctx, http.MethodGet, u, nil, "", true)
	if err != nil {
		return nil, "", err
	}
	// Accept either {"items":[...],"next":"..."} or a bare list.
	var page struct {
		Items   []ObjectName `json:"items"`
		Objects []ObjectName `json:"objects"`
		Next    string       `json:"next"`
		Cursor  string       `json:"next_cursor"`
	}
	if err := json.Unmarshal(rep.Data, &page); err == nil {
		items := append(page.Items, page.Objects...)
		next := page.Next
		if next == "" {
			next = page.Cursor
		}
		return items, next, nil
	}
	var items []ObjectName
	if err := json.Unmarshal(rep.Data, &items); err != nil {
		return nil, "", &StatusError{Status: rep.Status, Message: "bad objects reply: " + err.Error()}
	}
	next := ""
	if len(items) == limit {
		next = items[len(items)-1].UID
	}
	return items, next, nil
}

// Member is one entry of /cluster/status's members.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
}

// ClusterStatus is GET /cluster/status's data.
type ClusterStatus struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Leader struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
	} `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	FSMHash      string   `json:"fsm_hash"`
	FSMIndex     uint64   `json:"fsm_index"` // the index fsm_hash was computed at, if reported
	Members      []Member `json:"members"`
	Storage      *struct {
		UnderProtected int            `json:"under_protected"`
		Tasks          map[string]int `json:"tasks"`
		// Rebalance is absent on servers without rebalancing and before
		// the first move.
		Rebalance *struct {
			PendingMoves int64 `json:"pending_moves"`
			PlannedMoves int64 `json:"planned_moves"`
			MovedCopies  int64 `json:"moved_copies"`
		} `json:"rebalance"`
	} `json:"storage"`
}

// Status returns a node's view of the cluster.
func (a *API) Status(ctx context.Context, base string) (*ClusterStatus, error) {
	rep, err := a.do(ctx, http.MethodGet, base+"/cluster/status", nil, "", true)
	if err != nil {
		return nil, err
	}
	var st ClusterStatus
	if err := json.Unmarshal(rep.Data, &st); err != nil {
		return nil, &StatusError{Status: rep.Status, Message: "bad status reply: " + err.Error()}
	}
	return &st, nil
}

// Ready reports whether GET /readyz answers 200. A server without the
// endpoint (404) counts as ready.
func (a *API) Ready(ctx context.Context, base string) error {
	_, err := a.do(ctx, http.MethodGet, base+"/readyz", nil, "", false)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// RemoveNode removes a node from the cluster.
func (a *API) RemoveNode(ctx context.Context, base, id string) error {
	_, err := a.do(ctx, http.MethodDelete, base+"/cluster/nodes/"+url.PathEscape(id), nil, "", true)
	return err
}

// Task is one entry of GET /tasks.
type Task struct {
	ID          json.RawMessage `json:"id"`
	Type        string          `json:"type"`
	Target      json.RawMessage `json:"target"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	LeaseHolder string          `json:"lease_holder"`
	LeaseExpiry json.RawMessage `json:"lease_expiry"`
}

// Expiry parses LeaseExpiry: RFC 3339 text or a Unix time in s, ms or ns.
func (t Task) Expiry() (time.Time, bool) {
	raw := strings.Trim(string(t.LeaseExpiry), `"`)
	if raw == "" || raw == "null" || raw == "0" {
		return time.Time{}, false
	}
	if ts, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return ts, !ts.IsZero() && ts.Year() > 1970
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || v <= 0 {
		return time.Time{}, false
	}
	switch {
	case v > 1e17:
		return time.Unix(0, int64(v)), true
	case v > 1e14:
		return time.UnixMicro(int64(v)), true
	case v > 1e11:
		return time.UnixMilli(int64(v)), true
	}
	return time.Unix(int64(v), 0), true
}

// Tasks lists the background tasks.
func (a *API) Tasks(ctx context.Context, base string) ([]Task, error) {
	rep, err := a.do(ctx, http.MethodGet, base+"/tasks", nil, "", true)
	if err != nil {
		return nil, err
	}
	var ts []Task
	if err := json.Unmarshal(rep.Data, &ts); err != nil {
		var page struct {
			Items []Task `json:"items"`
			Tasks []Task `json:"tasks"`
		}
		if err2 := json.Unmarshal(rep.Data, &page); err2 != nil {
			return nil, &StatusError{Status: rep.Status, Message: "bad tasks reply: " + err.Error()}
		}
		ts = append(page.Items, page.Tasks...)
	}
	return ts, nil
}
