// Package tasks runs the durable background tasks the FSM queues: the
// Runner's loop leases runnable tasks this node handles (preferring tier
// tasks on nodes holding the chunks, and yielding to uploads except for
// repairs), renews each lease while its handler works, and records the
// outcome (done, a handler's completion command, a retryable or permanent
// failure) through Raft. It also serves the task API (httpapi.Tasks).
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
