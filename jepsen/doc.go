// Package jepsen is osprey's chaos harness: it runs real osprey processes,
// injects real faults, drives the whole user flow against them, and checks
// the recorded history against the invariants of the design.
//
// A run (Run, usually through scripts/jepsen.sh or jepsen/cmd/jepsen):
//
//  1. puts each node in its own network namespace on a private Linux bridge
//     (Network; root only — without root the nodes run on 127.0.0.1 and
//     network faults are skipped), with the client in a namespace of its own;
//  2. starts N osprey processes with identical --bootstrap-expect/--join
//     command lines (Cluster, Proc) and, for --backend s3, MinIO;
//  3. runs concurrent client processes (Workload) doing link, single and
//     chunked uploads, merge, checkpoint, resume, dedup, downloads (full and
//     ranged), stat and delete on random nodes, recording every request in a
//     Recorder as an Op with invoke/ok/fail/info;
//  4. meanwhile follows a Schedule derived from the seed alone (NewSchedule):
//     kill -9 and restart, SIGSTOP/SIGCONT, iptables partitions (one node,
//     majority/minority, the leader, a bridge), remove-and-re-add, MinIO
//     outages (Nemesis);
//  5. heals everything, waits for the cluster, reads every file back, and
//     collects the nodes' state hashes, the object listing and the tasks;
//  6. checks (Check): per-uid linearizability with porcupine, durability of
//     acknowledged writes byte for byte, correct downloads, unique uids,
//     503 never applied, converged state hashes, tasks not stuck, no file
//     marked failed, and that the cluster recovered;
//  7. writes summary.txt, summary.json, report.html (SVG timeline) and
//     history.jsonl, keeping data directories and logs only on failure.
//
// Named regression scenarios live in the Scenarios table. See DESIGN.md
// for ownership, invariants, fault injection and how to read a report.
//
// The package needs Linux (network namespaces, setns).
package jepsen
