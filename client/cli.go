package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// CLI implements the client subcommands of the osprey binary on top of a
// Client; cmd/osprey only parses flags and calls it. Output goes to Stdout
// (results) and Stderr (progress, per-item errors).
type CLI struct {
	Client *Client
	Stdout io.Writer
	Stderr io.Writer
	// JSON prints machine-readable JSON instead of tables.
	JSON bool
}

func (c *CLI) printJSON(v any) error {
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *CLI) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
}

// Put stores each file and prints "<uid>\t<file>" per stored file. A file
// that fails is reported on Stderr and the others still run; the returned
// error joins all failures.
func (c *CLI) Put(ctx context.Context, files []string, opts PutOptions) error {
	if len(files) == 0 {
		return fmt.Errorf("%w: put needs at least one FILE", ErrUsage)
	}
	var errs []error
	var results []*PutResult
	for _, f := range files {
		res, err := c.Client.PutFile(ctx, f, opts)
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(append(errs, err)...)
			}
			if len(files) > 1 {
				fmt.Fprintf(c.Stderr, "osprey: %v\n", err)
			}
			errs = append(errs, err)
			continue
		}
		if c.JSON {
			results = append(results, res)
			continue
		}
		fmt.Fprintf(c.Stdout, "%s\t%s\n", res.UID, f)
	}
	if c.JSON {
		if results == nil {
			results = []*PutResult{}
		}
		if err := c.printJSON(results); err != nil {
			return err
		}
	}
	return summarize(errs, len(files), "files")
}

// partialError reports that some items of a batch failed; each failure was
// already printed. errors.Is/As see the individual errors.
type partialError struct {
	errs  []error
	total int
	what  string
}

func (e *partialError) Error() string {
	return fmt.Sprintf("%d of %d %s failed", len(e.errs), e.total, e.what)
}

func (e *partialError) Unwrap() []error { return e.errs }

func summarize(errs []error, total int, what string) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 && total == 1 {
		return errs[0] // nothing to summarise; let the caller print it
	}
	return &partialError{errs: errs, total: total, what: what}
}

// Get downloads uid to out ("" = the file's name, "-" = Stdout) and prints
// "<uid>\t<path>" unless the bytes went to Stdout.
func (c *CLI) Get(ctx context.Context, uid, out string, opts GetOptions) error {
	if opts.Stdout == nil {
		opts.Stdout = c.Stdout
	}
	res, err := c.Client.GetFile(ctx, uid, out, opts)
	if err != nil {
		return err
	}
	if out == "-" {
		return nil
	}
	if c.JSON {
		return c.printJSON(res)
	}
	_, err = fmt.Fprintf(c.Stdout, "%s\t%s\n", uid, res.Path)
	return err
}

// Link prints an absolute download URL per uid ("<uid>\t<url>"). Uids the
// server issued no link for are reported on Stderr and make the call fail.
func (c *CLI) Link(ctx context.Context, uids []string, expire time.Duration) error {
	if len(uids) == 0 {
		return fmt.Errorf("%w: link needs at least one UID", ErrUsage)
	}
	var all []DownloadLink
	for start := 0; start < len(uids); start += MaxLinkDownloadUIDs {
		links, err := c.Client.LinkDownload(ctx, uids[start:min(start+MaxLinkDownloadUIDs, len(uids))], expire)
		if err != nil {
			return err
		}
		all = append(all, links...)
	}
	var errs []error
	for i := range all {
		if all[i].URL == "" {
			why := firstNonEmpty(all[i].Error, "unknown or incomplete uid")
			err := fmt.Errorf("%w for %s: %s", ErrNoLink, uids[i], why)
			errs = append(errs, err)
			if !c.JSON && len(uids) > 1 {
				fmt.Fprintf(c.Stderr, "osprey: %v\n", err)
			}
			continue
		}
		all[i].URL = c.Client.AbsURL(all[i].URL)
		if !c.JSON {
			fmt.Fprintf(c.Stdout, "%s\t%s\n", uids[i], all[i].URL)
		}
	}
	if c.JSON {
		if err := c.printJSON(all); err != nil {
			return err
		}
	}
	return summarize(errs, len(uids), "uids")
}

// Stat prints the metadata of uid.
func (c *CLI) Stat(ctx context.Context, uid string) error {
	o, err := c.Client.Object(ctx, uid)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(o)
	}
	tw := c.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("uid", o.UID)
	row("name", o.Name)
	row("size", fmt.Sprintf("%s (%d bytes)", HumanBytes(o.Size), o.Size))
	row("md5", o.MD5)
	row("content type", o.ContentType)
	row("bucket", o.Bucket)
	row("state", o.State)
	row("location", o.Location)
	row("created", o.CreatedAt.String())
	if len(o.Chunks) > 0 && string(o.Chunks) != "null" {
		row("chunks", string(o.Chunks))
	}
	return tw.Flush()
}

// Remove deletes each uid, printing "deleted <uid>"; failures are reported
// on Stderr and joined into the returned error.
func (c *CLI) Remove(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return fmt.Errorf("%w: rm needs at least one UID", ErrUsage)
	}
	var errs []error
	for _, u := range uids {
		if err := c.Client.DeleteObject(ctx, u); err != nil {
			err = fmt.Errorf("rm %s: %w", u, err)
			if len(uids) > 1 {
				fmt.Fprintf(c.Stderr, "osprey: %v\n", err)
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.Stdout, "deleted\t%s\n", u)
	}
	return summarize(errs, len(uids), "uids")
}

// List prints objects: one page of limit starting at cursor, or every page
// when all is set. Without all, a following cursor is printed on Stderr.
func (c *CLI) List(ctx context.Context, cursor string, limit int, all bool) error {
	var items []Object
	next := cursor
	for {
		page, err := c.Client.Objects(ctx, next, limit)
		if err != nil {
			return err
		}
		items = append(items, page.Items...)
		prev := next
		next = page.NextCursor
		if !all || next == "" || next == prev {
			break
		}
	}
	if c.JSON {
		if items == nil {
			items = []Object{}
		}
		return c.printJSON(ObjectPage{Items: items, NextCursor: pick(all, "", next)})
	}
	tw := c.table()
	fmt.Fprintln(tw, "UID\tNAME\tSIZE\tSTATE\tBUCKET\tCREATED")
	for _, o := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.UID, o.Name, HumanBytes(o.Size), o.State, o.Bucket, o.CreatedAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !all && next != "" {
		fmt.Fprintf(c.Stderr, "more: --cursor %s (or --all)\n", next)
	}
	return nil
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

// ClusterStatus prints the answering node's view of the cluster.
func (c *CLI) ClusterStatus(ctx context.Context) error {
	s, err := c.Client.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return c.printJSON(s)
	}
	tw := c.table()
	fmt.Fprintf(tw, "node:\t%s (%s)\n", s.ID, s.State)
	if s.Leader.ID != "" {
		fmt.Fprintf(tw, "leader:\t%s  http=%s  raft=%s\n", s.Leader.ID, s.Leader.HTTPAddr, s.Leader.RaftAddr)
	} else {
		fmt.Fprintf(tw, "leader:\t(none)\n")
	}
	fmt.Fprintf(tw, "term:\t%d\n", s.Term)
	fmt.Fprintf(tw, "commit index:\t%d\n", s.CommitIndex)
	fmt.Fprintf(tw, "applied index:\t%d\n", s.AppliedIndex)
	fmt.Fprintf(tw, "fsm hash:\t%s\n", s.FSMHash)
	if v := s.Version; v["version"] != "" {
		fmt.Fprintf(tw, "version:\t%s (commit %s, built %s, %s)\n", v["version"], v["commit"], v["date"], v["go"])
	}
	if st := s.Storage; st != nil {
		fmt.Fprintf(tw, "redundancy:\t%s\n", st.Redundancy)
		fmt.Fprintf(tw, "backend:\t%s\n", st.Backend)
		fmt.Fprintf(tw, "files:\t%d\n", st.Files)
		prot := "full"
		if st.UnderProtected > 0 {
			prot = fmt.Sprintf("degraded: %d of %d staged copies under-protected", st.UnderProtected, st.StagedCopies)
		} else if st.Protection == "degraded" || len(st.Degraded) > 0 {
			prot = "degraded"
		}
		fmt.Fprintf(tw, "protection:\t%s\n", prot)
		for _, d := range st.Degraded {
			fmt.Fprintf(tw, "  %s:\t%s\n", d.ID, degradedText(d, time.Now()))
		}
		keys := make([]string, 0, len(st.Tasks))
		for k := range st.Tasks {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, st.Tasks[k]))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintf(tw, "tasks:\t%s\n", strings.Join(parts, " "))
		if rb := st.Rebalance; rb != nil {
			fmt.Fprintf(tw, "rebalance:\t%d moves pending, %d of %d copies moved (%s)\n", rb.PendingMoves, rb.MovedCopies,
				rb.PlannedMoves, HumanBytes(rb.MovedBytes))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.Stdout)
	tw = c.table()
	fmt.Fprintln(tw, "ID\tSUFFRAGE\tWORKER\tHTTP\tRAFT\tLEADER")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Suffrage, m.WorkerID, m.HTTPAddr, m.RaftAddr,
			pick(m.ID == s.Leader.ID, "*", ""))
	}
	return tw.Flush()
}

// ClusterNodes prints the members with live reachability.
func (c *CLI) ClusterNodes(ctx context.Context) error {
	nodes, err := c.Client.ClusterNodes(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if nodes == nil {
			nodes = []Node{}
		}
		return c.printJSON(nodes)
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tLEADER\tREACHABLE\tRTT\tSUFFRAGE\tWORKER\tHTTP\tRAFT")
	for _, n := range nodes {
		rtt := "-"
		if n.Reachable {
			rtt = strconv.FormatFloat(n.RTTMillis, 'f', 1, 64) + "ms"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, pick(n.Leader, "*", ""), pick(n.Reachable, "yes", "NO"),
			rtt, n.Suffrage, n.WorkerID, n.HTTPAddr, n.RaftAddr)
	}
	return tw.Flush()
}

// ClusterJoin asks the cluster to add a node.
func (c *CLI) ClusterJoin(ctx context.Context, j JoinRequest) error {
	if err := c.Client.ClusterJoin(ctx, j); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.Stdout, "joined\t%s\n", j.ID)
	return err
}

// ClusterRemove removes a node.
func (c *CLI) ClusterRemove(ctx context.Context, id string) error {
	if err := c.Client.ClusterRemove(ctx, id); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.Stdout, "removed\t%s\n", id)
	return err
}

// LeaderTransfer moves leadership to id ("" = any node) and prints the new
// leader when the answering node knows it.
func (c *CLI) LeaderTransfer(ctx context.Context, id string) error {
	if err := c.Client.LeaderTransfer(ctx, id); err != nil {
		return err
	}
	if s, err := c.Client.ClusterStatus(ctx); err == nil && s.Leader.ID != "" {
		_, err = fmt.Fprintf(c.Stdout, "leader\t%s\n", s.Leader.ID)
		return err
	}
	_, err := fmt.Fprintln(c.Stdout, "leadership transfer requested")
	return err
}

// Tasks prints background tasks, optionally only those in state.
func (c *CLI) Tasks(ctx context.Context, state string) error {
	tasks, err := c.Client.Tasks(ctx, state)
	if err != nil {
		return err
	}
	if c.JSON {
		if tasks == nil {
			tasks = []Task{}
		}
		return c.printJSON(tasks)
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tTYPE\tTARGET\tSTATE\tATTEMPTS\tLEASE\tNEXT ATTEMPT\tLAST ERROR")
	for _, t := range tasks {
		lease := "-"
		if t.LeaseHolder != "" {
			lease = t.LeaseHolder + " until " + t.LeaseExpiry.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Type, t.Target, t.State, t.Attempts, lease,
			pick(t.NextAttempt == "", "-", t.NextAttempt.String()), oneLine(t.LastError, 60))
	}
	return tw.Flush()
}

// RetryTask makes a task runnable now.
func (c *CLI) RetryTask(ctx context.Context, id string) error {
	if err := c.Client.RetryTask(ctx, id); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.Stdout, "retrying\t%s\n", id)
	return err
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

// ErrUsage is returned for wrong command-line arguments.
var ErrUsage = errors.New("client: bad usage")

// HumanBytes formats n with IEC units ("1.5 MiB").
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseSize parses a byte count: a plain integer, or one with a unit
// suffix K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (case-insensitive). K, Ki
// and KiB are powers of 1024, KB is 1000.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := int64(1)
	switch unit {
	case "", "b":
	case "k", "ki", "kib":
		mult = 1 << 10
	case "kb":
		mult = 1e3
	case "m", "mi", "mib":
		mult = 1 << 20
	case "mb":
		mult = 1e6
	case "g", "gi", "gib":
		mult = 1 << 30
	case "gb":
		mult = 1e9
	case "t", "ti", "tib":
		mult = 1 << 40
	case "tb":
		mult = 1e12
	default:
		return 0, fmt.Errorf("%w: bad size %q", ErrUsage, s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%w: bad size %q", ErrUsage, s)
	}
	return v * mult, nil
}

// degradedText describes why a member costs protection and what happens
// next.
func degradedText(d DegradedMember, now time.Time) string {
	var parts []string
	if d.UnreachableSince != nil {
		parts = append(parts, fmt.Sprintf("unreachable since %s (%s ago)", d.UnreachableSince.Format(time.RFC3339),
			now.Sub(*d.UnreachableSince).Round(time.Second)))
	}
	switch {
	case d.Down:
		parts = append(parts, "marked down: its copies are being rebuilt on other members")
	case d.RepairAt != nil:
		parts = append(parts, fmt.Sprintf("repair of its copies starts at %s (in %s) if it stays unreachable",
			d.RepairAt.Format(time.RFC3339), d.RepairAt.Sub(now).Round(time.Second)))
	default:
		parts = append(parts, "its copies are repaired only when it is removed (--repair-grace 0)")
	}
	return strings.Join(parts, "; ")
}
