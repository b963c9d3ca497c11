// Package tasks runs the durable background tasks the FSM queues: the
// Runner's loop leases runnable tasks this node handles (preferring tier
// tasks on nodes holding the chunks, and yielding to uploads, except for
// repairs, while its backlog is below Config.YieldBacklog), renews each
// lease while its handler works, and records the outcome (done, a
// handler's completion command, a retryable or permanent failure) through
// Raft. It also serves the task API (httpapi.Tasks).
//
// A handler that implements Batcher (repair: one task per copy a lost
// member held) runs apart, in batches (batch.go): up to BatchSize tasks
// leased in one command, Parallel of them at a time, and their outcomes
// recorded together with the lease of the next batch in one ApplyAll (one
// group-commit entry), one batch ahead. Each task is still completed by
// its own command, so batching needs no new command type.
//
// Handlers are registered explicitly in Config.Handlers; this package
// holds tier, gc, delete and webhook. Repair lives in package repair and
// implements the same Handler interface. Every dependency is a small
// interface declared here (State, Proposer, Uploads, and each handler's
// own view of the data path, placement and backend), so the loop and the
// handlers are tested with a fake proposer and in-memory state.
//
// A handler must be idempotent: a task runs again after a crash or an
// expired lease, possibly on another node.
package tasks
