// Package local is the local-disk backend.Backend: every object is a plain
// file at Config.Dir/<bucket>/<key>, so an operator can inspect, back up or
// rsync the tree with ordinary tools.
//
// # Durability and atomicity
//
// Put streams the body into a temporary file (".osprey-tmp-*") in the
// object's final directory through a fixed-size buffer, computing the md5 on
// the way; a body whose md5 does not match PutOptions.MD5, or that ends
// early, fails before anything is renamed. The file is fsynced, renamed over
// the final name (rename(2) is atomic, so readers see the old or the new
// object, never a partial one) and the directory is fsynced so the rename
// itself survives a crash. Directories created for a key are fsynced into
// their parents too.
//
// # Metadata
//
// The md5 (and content type) are kept in a small JSON sidecar under
// Config.Dir/.osprey-meta/<bucket>/<key>.json. The sidecar records the
// inode number, size and modification time of the content file it
// describes; rename keeps the inode, so Stat can tell whether the sidecar
// belongs to the file it just opened, and if it does not (missing, torn,
// or describing another version) Stat recomputes the md5 from the open
// file. Stat therefore never reports an md5 that belongs to other bytes.
//
// That check makes the sidecar a cache rather than a record, which is what
// keeps Put cheap: the sidecar is written only after the object is durable
// (temporary file and rename, no fsync, outside the directory fsync's
// journal commit), so a Put costs the two fsyncs of a plain durable file
// write. In the short window before the sidecar lands, and after a crash
// that lost it, Stat pays a full read instead.
//
// # Keys
//
// Keys follow the shared rules (see backendtest). Because keys are paths,
// two keys where one is a directory prefix of the other ("a/b" and "a/b/c")
// cannot exist at the same time; the second Put fails with
// backend.ErrInvalid. Path segments starting with ".osprey-" are reserved
// for temporary files and rejected. Delete removes directories left empty.
//
// Temporary files of a Put interrupted by a crash stay behind, named
// ".osprey-tmp-*"; they are never visible as objects. RemoveStaleTemps
// deletes those not written to for a given age (a node's scrubber calls it
// with --orphan-grace).
//
// # Walking and claiming
//
// Walk lists the stored objects with their versions, for a node's scrubber
// to find object files no record names the node a holder of (deleted with
// DeleteVersion, so a later write is kept). Claim records the node that
// keeps its objects in the directory (".osprey-owner"): a node finding
// another's claim must not delete files it does not recognise there.
//
// # Versions
//
// Beyond backend.Backend, Version names the stored write of a key (its
// file's inode and modification time: every Put renames a new file into
// place) and DeleteVersion deletes the key only while it is still that
// write, under a lock a Put's rename also takes. A cluster's rebalance
// releases an off-ring copy this way, so a release delivered late cannot
// remove a copy a later move wrote to the same key.
package local
