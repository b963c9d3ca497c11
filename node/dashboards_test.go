package node_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var metricName = regexp.MustCompile(`osprey_[a-z_]+`)

// TestDashboardAndAlertsUseExportedMetrics: every metric the Grafana
// dashboard and the example alert rules query is one a node exports.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	// A tiered upload (above --inline-max, so a tier task runs) makes the
	// labelled series (requests, task runs) exist.
	uid := uploadSingle(t, n, "d.txt", content(5, 200<<10))
	waitState(t, n, uid, "tiered")
	waitFor(t, 30*time.Second, "no pending tasks", func() bool { return len(n.FSM().Tasks("")) == 0 })
	code, body, _ := apiOf(t, n).get("/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if m := metricName.FindString(line); m != "" && strings.HasPrefix(line, m) {
			exported[m] = true
		}
	}
	dash, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "osprey-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(d.Panels))
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "osprey-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &r); err != nil || len(r.Groups) == 0 {
		t.Fatalf("alert rules: %v", err)
	}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" || rule.Expr == "" {
				t.Errorf("rule without alert name or expression: %+v", rule)
			}
			exprs = append(exprs, rule.Expr)
		}
	}
	used := 0
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			used++
			// Histogram series (_bucket, _sum, _count) appear under
			// their own names in the exposition.
			if !exported[m] {
				t.Errorf("%q is queried but not exported (in %q)", m, e)
			}
		}
	}
	if used < 20 {
		t.Fatalf("only %d metric references found", used)
	}
}
