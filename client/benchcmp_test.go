package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareMarkdown(t *testing.T) {
	one := &BenchReport{Results: []BenchResult{
		{Name: benchDiskWrite, Value: 400, Unit: "MB/s"},
		{Name: benchLoopback, Value: 1700, Unit: "MB/s"},
		{Name: benchUpload, Value: 200, Unit: "MB/s", Limit: benchDiskWrite, Ratio: 0.5},
		{Name: "4 KiB upload (link+PUT), c=16", Value: 1000, Unit: "files/s"},
		{Name: "peak RSS n1", Value: 200, Unit: "MiB"},
		{Name: "only in one", Value: 5, Unit: "x"},
	}}
	three := &BenchReport{Results: []BenchResult{
		{Name: benchDiskWrite, Value: 390, Unit: "MB/s"},
		{Name: benchLoopback, Value: 1650, Unit: "MB/s"},
		{Name: benchUpload, Value: 140, Unit: "MB/s"},
		{Name: "4 KiB upload (link+PUT), c=16", Value: 600, Unit: "files/s"},
		{Name: "peak RSS n1", Value: 250, Unit: "MiB"},
	}}
	dir := t.TempDir()
	p := filepath.Join(dir, "three.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := three.JSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back, err := ReadBenchReport(p)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := CompareMarkdown(&b, "1 node", one, "3 nodes", back); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| " + benchUpload + " | 200 | 140 | MB/s | 0.70 |",
		"| 4 KiB upload (link+PUT), c=16 | 1000 | 600 | files/s | 0.60 |",
		"| peak RSS n1 | 200 | 250 | MiB |  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, not := range []string{benchDiskWrite, benchLoopback, "only in one"} {
		if strings.Contains(out, not) {
			t.Errorf("%q should be left out:\n%s", not, out)
		}
	}
	if _, err := ReadBenchReport(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing report read without error")
	}
}
