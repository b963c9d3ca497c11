package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ClusterStatus returns the answering node's view of the cluster (GET
// /cluster/status).
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	if err := c.doJSON(ctx, &request{method: http.MethodGet, target: "/cluster/status", auth: true, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClusterNodes lists the members with live reachability (GET /cluster/nodes).
func (c *Client) ClusterNodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: "/cluster/nodes", auth: true, idempotent: true}, &out)
	return out, err
}

// ClusterJoin asks the cluster to add a node (POST /cluster/join). Joining
// again with the same id and addresses is a no-op, so it is retried.
func (c *Client) ClusterJoin(ctx context.Context, j JoinRequest) error {
	body, n, err := jsonBody(j)
	if err != nil {
		return err
	}
	return c.doJSON(ctx, &request{method: http.MethodPost, target: "/cluster/join", body: body, contentLength: n,
		contentType: contentTypeJSON, auth: true, idempotent: true}, nil)
}

// ClusterRemove removes node id from the cluster (DELETE /cluster/nodes/{id}).
func (c *Client) ClusterRemove(ctx context.Context, id string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, target: "/cluster/nodes/" + url.PathEscape(id),
		auth: true, idempotent: true}, nil)
}

// LeaderTransfer asks the leader to hand leadership to node id, or to any
// suitable node when id is "" (POST /cluster/leader-transfer).
func (c *Client) LeaderTransfer(ctx context.Context, id string) error {
	body, n, err := jsonBody(leaderTransferRequest{ID: id})
	if err != nil {
		return err
	}
	// Not idempotent: a second transfer would move leadership again.
	return c.doJSON(ctx, &request{method: http.MethodPost, target: "/cluster/leader-transfer", body: body,
		contentLength: n, contentType: contentTypeJSON, auth: true}, nil)
}

// Tasks lists background tasks, optionally only those in state (GET /tasks).
func (c *Client) Tasks(ctx context.Context, state string) ([]Task, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	var out []Task
	err := c.doJSON(ctx, &request{method: http.MethodGet, target: "/tasks", query: q, auth: true, idempotent: true}, &out)
	return out, err
}

// RetryTask makes a failed or backing-off task runnable now (POST
// /tasks/{id}/retry).
func (c *Client) RetryTask(ctx context.Context, id string) error {
	return c.doJSON(ctx, &request{method: http.MethodPost, target: "/tasks/" + url.PathEscape(id) + "/retry",
		auth: true, idempotent: true}, nil)
}

// Ready reports whether the node at base (one of Addrs, or "" for the next
// one) is ready: it has a leader and its stores are open (GET /readyz). It
// is not retried; a not-ready node returns an error matching ErrUnavailable.
func (c *Client) Ready(ctx context.Context, base string) error {
	if base == "" {
		base = c.pickAddr()
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, target: base + "/readyz", noRetry: true})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return resp.Body.Close()
}

// Metric returns the value of an unlabelled sample (e.g.
// "process_resident_memory_bytes") from the Prometheus text exposition at
// base+"/metrics". It returns an error matching ErrNotFound if the metric
// is absent.
func (c *Client) Metric(ctx context.Context, base, name string) (float64, error) {
	if base == "" {
		base = c.pickAddr()
	}
	// With the key: a node started with --metrics-require-key answers
	// /metrics only to it.
	resp, err := c.do(ctx, &request{method: http.MethodGet, target: base + "/metrics", auth: true, idempotent: true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return scanMetric(resp.Body, name)
}

// WaitIdle polls the node at base (its /metrics) until it reports no
// pending or leased tasks, that is until its background work (tiering,
// gc, repair) caught up, or until ctx ends, polling every poll. It
// returns how long it waited; on ctx's end, the error says how many tasks
// were left.
func (c *Client) WaitIdle(ctx context.Context, base string, poll time.Duration) (time.Duration, error) {
	start := time.Now()
	t := time.NewTicker(poll)
	defer t.Stop()
	left := -1.0 // unknown until the first complete read
	ended := func() (time.Duration, error) {
		if left < 0 {
			return time.Since(start), fmt.Errorf("tasks not read: %w", context.Cause(ctx))
		}
		return time.Since(start), fmt.Errorf("%.0f tasks left: %w", left, context.Cause(ctx))
	}
	for {
		sum := 0.0
		for _, st := range []string{"pending", "leased"} {
			v, err := c.Metric(ctx, base, `osprey_tasks{state="`+st+`"}`)
			if err != nil {
				if ctx.Err() != nil {
					return ended()
				}
				return time.Since(start), err
			}
			sum += v
		}
		if left = sum; left == 0 {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return ended()
		case <-t.C:
		}
	}
}

// scanMetric finds "name value" or "name{} value" in a text exposition.
func scanMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "{}")
		if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue // a longer metric name, or labels
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%w: metric %s: %w", ErrProtocol, name, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%w: metric %s", ErrNotFound, name)
}
