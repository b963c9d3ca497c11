package client

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ReadBenchReport reads a report written by BenchReport.JSON.
func ReadBenchReport(path string) (*BenchReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r BenchReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("client: %s is not an osprey bench report: %w", path, err)
	}
	return &r, nil
}

// CompareMarkdown writes, for every osprey row (physical-limit rows and
// rows without a value left out) present in both reports, the figure of
// base and of other and other/base, as a Markdown table: e.g. 3 nodes
// against 1 node measured in the same run. A row whose unit is "MiB"
// (memory) gets no ratio: there, smaller is not worse.
func CompareMarkdown(w io.Writer, baseName string, base *BenchReport, otherName string, other *BenchReport) error {
	limits := map[string]bool{benchDiskWrite: true, benchDiskRead: true, benchLoopback: true, benchLoopbackMD5: true, benchFsync4K: true}
	for _, r := range base.Results {
		if r.Limit != "" {
			limits[r.Limit] = true
		}
	}
	byName := map[string]BenchResult{}
	for _, r := range other.Results {
		byName[r.Name] = r
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| metric | %s | %s | unit | %s / %s |\n|---|---:|---:|---|---:|\n", baseName, otherName, otherName, baseName)
	for _, r := range base.Results {
		o, ok := byName[r.Name]
		if !ok || limits[r.Name] || r.Value <= 0 || o.Value <= 0 {
			continue
		}
		ratio := ""
		if r.Unit != "MiB" {
			ratio = strconv.FormatFloat(o.Value/r.Value, 'f', 2, 64)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Name, formatValue(r.Value), formatValue(o.Value), r.Unit, ratio)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
