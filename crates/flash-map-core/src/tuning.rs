//! The engines' tuning constants, in one place.
//!
//! Every number here was chosen by measurement on the machines of `BENCHMARKS.md` (which
//! records the figures, the machine and the command); none affects results, only speed.
//! Change one, and re-run the compare binary before and after.

/// The tuning constants of the CPU engines and of the GPU engine's host side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Bytes of table (state, key and value arrays together) that one region of a
    /// partitioned serial pass spans: a quarter of a 2 MiB L2 cache, so that a region's
    /// lines stay cached while its keys are probed, with room for the streams in and out
    /// (larger and smaller regions were slower on lookups).
    pub region_bytes: usize,
    /// At most this many regions (region numbers are `u16`, and a partition writes this
    /// many streams at once).
    pub max_regions: usize,
    /// Tables of fewer regions run in batch order: with regions of 512 KiB, tables under 32
    /// MiB, which the last-level cache of the machines measured holds, so that partitioning
    /// (a copy of the batch, and a merge of lookup results) costs more than the misses it
    /// saves. Where Linux reports a larger last-level cache, tables it holds run in batch
    /// order too (`flash_map_cpu`'s `partition_shift`).
    pub min_regions: usize,
    /// An empty table's fill runs in batch order while the table is at most this many times
    /// the size from which serial passes partition (the last-level cache's, see
    /// `min_regions`): its keys claim free slots and read no stored key back, so the
    /// partition's copy of the batch and its scratch cost more than the misses they save.
    /// Measured with a 32 MiB last-level cache: batch order the faster for tables of 34 to
    /// 136 MiB, partition order for a table of 272 MiB (BENCHMARKS.md, issue 13). Larger
    /// tables fill in partition order, as every pass on a table that holds entries does.
    pub fill_batch_order_factor: usize,
    /// Batches sparser than one key per this many slots run in batch order (too few keys
    /// share a region's lines).
    pub min_slots_per_key: usize,
    /// Slots larger than this (state, key and value bytes) run in batch order: copying such
    /// records costs more than the misses it saves.
    pub max_slot_bytes: usize,
    /// Keys of a lookup batch sampled (evenly spaced) to judge whether most are absent, in
    /// which case a partitioned lookup sizes its regions by the state words alone.
    pub absent_sample: usize,
    /// The prefetch pipeline hashes a key and fetches its home lines this many keys ahead of
    /// the key being processed ...
    pub prefetch_hash_ahead: usize,
    /// ... and, for lookups of records larger than a cache line, reads the (now cached) home
    /// state words this many keys ahead to fetch the matching slot's key and value lines.
    pub prefetch_match_ahead: usize,
    /// Passes that read at most this many bytes of table (all three arrays) run without
    /// software prefetch, where the system does not tell the L2 cache's size (where it does,
    /// a quarter of that size: `flash_map_cpu`'s `cached_bytes`). This is a quarter of a
    /// 1 MiB L2 cache.
    pub cached_table_bytes: usize,
    /// Lookups of mostly absent keys that read at most a quarter of this many bytes of state
    /// bytes run without software prefetch, where the system does not tell the L1 data
    /// cache's size (where it does, a quarter of that size).
    pub cached_state_bytes: usize,
    /// Host tables (all arrays together) of at most this many bytes whose key and value fit
    /// one line together keep each slot's key and value side by side in one record
    /// (`flash_map_cpu::records`): a hit or a claim then touches one line fewer. Serial
    /// passes over such a table run in batch order, never partitioned: in partition order,
    /// whose sweeps and removals moved more bytes with records than they saved, records lost
    /// on every op. Larger tables keep two arrays (and partition). Where the CPU's
    /// last-level cache is larger than this, the size from which serial passes would
    /// partition (`flash_map_cpu`'s `partition_shift`) takes its place. Twice the 32 MiB
    /// last-level cache of the machine measured (BENCHMARKS.md, issue 13): a table of 800K
    /// `u64` pairs (36 MB) filled and was looked up faster in records in batch order than
    /// in two arrays partitioned, and removals were slower, within their goal; in tables of
    /// 71 and 143 MB the records' fill was faster again, their hits gained nothing and
    /// their removals lost more.
    pub record_max_table_bytes: usize,
    /// Slots a sweep (the prefetch of passes in partition order) fetches at a time: one
    /// line of 4-byte state words, for which it was measured.
    pub sweep_slots: usize,
    /// A lookup's prefetch fetches at most this many bytes of a value (a 128-byte value spans
    /// two lines, and the second would otherwise miss on its own when the value is read).
    pub value_prefetch_bytes: usize,
    /// Batch positions per rayon task: large enough to amortise scheduling, small enough to
    /// balance.
    pub rayon_min_len: usize,
    /// The rayon engine runs a lookup (get, contains) of at most this many keys on the
    /// calling thread, in a table whose values fill a cache line or more: the threads of
    /// rayon's pool sleep between batches, and such a lookup is done about as soon as the
    /// threads woken for it would have shared it, whose results would then cross to the
    /// caller (BENCHMARKS.md, issue 13, "cold memory for every engine").
    pub rayon_lookup_serial_len: usize,
    /// The rayon engine runs a mutation (insert, insert_new, add, remove) on the calling
    /// thread, with the serial engine's passes, when its pool has at most this many threads
    /// and the table is at most `rayon_serial_table_bytes` ... Its parallel claims are
    /// atomic and probe slot by slot, and in a table that stays in cache they cost each
    /// thread about twice what a serial claim costs (BENCHMARKS.md, issue 13), so two
    /// threads do no more than one. In such a pool claims (insert, insert_new, add) run on
    /// the calling thread at every table size but one: the fill of an empty table that the
    /// serial engine would partition (`flash_map_cpu`'s `serial_rule`).
    pub rayon_serial_max_threads: usize,
    /// ... (beyond it, memory latency dominates, and the threads' misses overlap: for
    /// removals).
    pub rayon_serial_table_bytes: usize,
    /// The serial insert into a table without tombstones writes the value of a key already
    /// present at once, while the key's line is in cache, and keeps the value it overwrote
    /// (to put back if the batch fails) in a log of at most this many bytes. Past it, such
    /// keys' values are written after the batch has succeeded, as before the log (a second
    /// pass over their slots), so the log never holds more than this.
    pub update_log_bytes: usize,
    /// Host arrays at least this large are mapped directly and committed when the table is
    /// built (their pages faulted in by one call, in order), rather than faulted in one by
    /// one, in random order, by the first batch's probes ...
    pub commit_min_bytes: usize,
    /// ... and from this size on, 2 MiB-aligned with transparent huge pages advised ...
    pub huge_page_min_bytes: usize,
    /// ... over their whole 2 MiB blocks, and over the last, partial block too when it holds
    /// at least this many bytes: the array's memory then ends with a whole huge page, up to
    /// as many bytes unused as the block holds used. An array of this size and up to
    /// `huge_page_min_bytes` is one huge page. Such a block takes its huge page only right
    /// after a fast one (else 4 KiB pages): where huge pages come slowly, the first shows it.
    /// Measured (BENCHMARKS.md, issue 13): a huge page commits in the time of 256–512 KiB of
    /// 4 KiB pages where the system has free 2 MiB blocks, so a tail this large costs several
    /// times its time in 4 KiB pages, and never more than its own size in memory.
    pub huge_page_tail_min_bytes: usize,
    /// Mapped arrays that a dropped table leaves are kept, up to this many bytes in all, for
    /// the next array of the same length, which is then zeroed where it lies instead of
    /// mapped and faulted in afresh: a process that builds tables of one size again and
    /// again (one per block, per window, per chunk of input) pays for the pages once.
    pub spare_bytes: usize,
    /// A serial lookup's fresh result vector of at most this many bytes (from
    /// `huge_page_min_bytes`) gets its whole 2 MiB pages committed as huge pages before the
    /// lookup writes it, paced as a table's arrays are (`commit_min_rate`); a larger one,
    /// and a smaller one from `commit_min_bytes` on, is left in 4 KiB pages and faulted in
    /// by one call (`flash_map_cpu::commit_for_writes`), as a parallel lookup's is at every
    /// size, on all of rayon's threads (with huge pages, the rayon engine's lookups of 13 MB
    /// results were the slower and the more scattered); either unless the allocator handed
    /// out memory the process had already faulted in. Measured on a
    /// virtual machine whose host takes freed memory back (BENCHMARKS.md, issue 13):
    /// results of 13 MB faulted in faster in huge pages, every run; results of 128–129 MB
    /// in huge pages made most serial lookups four to five times slower (the host giving
    /// back more huge pages than the process had just freed), and in 4 KiB pages never.
    pub result_huge_max_bytes: usize,
    /// The rayon engine commits a fresh table array of at least this many bytes on all of
    /// its threads (on a pool of `parallel_commit_min_threads` or more), in equal shares of
    /// whole huge pages, and a smaller one on the calling thread, as the serial engine
    /// does. Measured on a 16-thread host (BENCHMARKS.md, "The GPU bundle on an H200"), in
    /// fresh processes against the calling thread alone, with the pace judging the parallel
    /// commit as a whole: tables of 27 MB to 285 MB (W1 100K to W2 8M) built 1.8 to 9.5
    /// times faster at the median and 1.6 to 4 times at the maximum; a 5 MB one (W2 80K,
    /// its 4 MiB record array in two shares) as fast. (An earlier threshold of
    /// 256 MiB was set on two threads, where the parallel commit no longer runs at all.) ...
    pub parallel_commit_min_bytes: usize,
    /// ... and on a pool of fewer threads than this, every array commits on the calling
    /// thread: in fresh processes on the same two-thread machine, 285 MB tables built on
    /// one thread at least as fast at the median as on two, free memory, fragmented or just
    /// given back, with as many huge pages or more, and 0.5–1 GB tables alike; maxima
    /// alike. (Earlier, on another two-thread machine, two threads committed 344 MB faster
    /// where huge pages came fast.) Pools of 4, 8 and 16 threads on a 16-thread host gained
    /// from it (`parallel_commit_min_bytes`).
    pub parallel_commit_min_threads: usize,
    /// A commit runs in steps of this many bytes ...
    pub commit_step_bytes: usize,
    /// ... except a parallel lookup's results (`flash_map_cpu::prepare_results`): they
    /// split into equal steps, one per rayon thread while each holds at least this many
    /// bytes (else fewer: results below twice this stay with the calling thread), and none
    /// longer than `commit_step_bytes`. In steps of `commit_step_bytes` alone, 12.9 MB of
    /// results went as 8 MiB to one thread and 4.3 MiB to the other, and the lookup waited
    /// for the longer; 1.3 MB split in two committed slower than on one thread
    /// (BENCHMARKS.md, issue 13).
    pub commit_share_min_bytes: usize,
    /// ... and within a step in huge pages, a huge page slower than this many bytes per
    /// second sends the rest of the step, and the next steps, to 4 KiB pages, until these
    /// have taken `commit_probe_ratio` times its time; then a huge page is tried again (where
    /// 4 KiB pages were faster per byte; else huge pages stay for a while). The
    /// rate lies below the usual pace of 4 KiB pages and well above that of huge pages which
    /// the kernel must first make (compacting memory, or taking back memory that a virtual
    /// machine's host took), so a huge page slower than it would have been faster in 4 KiB
    /// pages (see `flash-map-cpu`'s `buf.rs`; the figures are in BENCHMARKS.md, issue 13).
    pub commit_min_rate: usize,
    /// See `commit_min_rate`; each try in huge pages that is slow again doubles the ratio
    /// before the next, up to `commit_probe_ratio_max`.
    pub commit_probe_ratio: usize,
    /// See `commit_probe_ratio`.
    pub commit_probe_ratio_max: usize,
    /// The pace of commits in huge pages (`commit_min_rate`) is one for the whole process,
    /// so that the arrays of one build, committed one right after another, and the threads
    /// that commit one array, share what each huge page showed; it starts over in huge pages
    /// when no commit has used it for this many milliseconds, so that a slow stretch of one
    /// build does not send the next build's arrays, after the batches between, to 4 KiB
    /// pages (where a small table's few huge pages would have been fast).
    pub commit_pace_forget_ms: usize,
    /// The commits of a serial lookup's results in huge pages (`result_huge_max_bytes`) and
    /// of a partitioned pass's scratch follow a pace of their own, apart from the tables'
    /// (after a table's slow huge page, results then went to 4 KiB pages where huge pages
    /// came fast again), also one for the whole process: it starts over in huge pages when
    /// no such commit has used it for this many milliseconds. Started over at every commit,
    /// as it was, it paid for one slow huge page per lookup (and per scratch) while huge
    /// pages stayed slow, each costing several times the whole 2 MiB in 4 KiB pages; kept
    /// across the lookups of a batch sequence, it pays for one per stretch (see
    /// `commit_probe_ratio`).
    pub result_pace_forget_ms: usize,
    /// Threads per block of every kernel launch.
    pub gpu_block: usize,
    /// Blocks per streaming multiprocessor at most (grid-stride loops cover the rest).
    pub gpu_blocks_per_sm: usize,
    /// Bytes per pinned staging chunk of a host → device copy (two chunks alternate).
    pub gpu_stage_chunk: usize,
    /// Bytes of lookup results per chunk of a device → host copy (chunks overlap with the
    /// host filling the caller's results).
    pub gpu_download_chunk: usize,
    /// Per kernel (indexed by [`Kernel`](crate::abi::Kernel)), the most registers a thread
    /// may use (`.maxnreg`, written into the PTX by `cargo xtask ptx`), 0 for no limit:
    /// where ptxas would otherwise take a few registers more than the occupancy step below
    /// on some architecture, and the cap costs no spills on any (xtask fails on spills).
    pub gpu_register_caps: [u32; 9],
}

/// The defaults every engine runs with.
pub const TUNING: Tuning = Tuning {
    region_bytes: 1 << 19,
    max_regions: 1 << 11,
    min_regions: 64,
    fill_batch_order_factor: 4,
    min_slots_per_key: 8,
    max_slot_bytes: 64,
    absent_sample: 256,
    prefetch_hash_ahead: 16,
    prefetch_match_ahead: 8,
    cached_table_bytes: 256 << 10,
    cached_state_bytes: 32 << 10,
    record_max_table_bytes: 64 << 20,
    sweep_slots: 16,
    value_prefetch_bytes: 256,
    rayon_min_len: 4096,
    rayon_lookup_serial_len: 16384,
    rayon_serial_max_threads: 2,
    rayon_serial_table_bytes: 16 << 20,
    update_log_bytes: 16 << 20,
    commit_min_bytes: 256 << 10,
    huge_page_min_bytes: 2 << 20,
    huge_page_tail_min_bytes: 1 << 20,
    spare_bytes: 32 << 20,
    result_huge_max_bytes: 32 << 20,
    parallel_commit_min_bytes: 4 << 20,
    parallel_commit_min_threads: 3,
    commit_step_bytes: 8 << 20,
    commit_share_min_bytes: 2 << 20,
    commit_min_rate: 3 << 29,
    commit_probe_ratio: 4,
    commit_probe_ratio_max: 64,
    commit_pace_forget_ms: 10,
    result_pace_forget_ms: 1000,
    gpu_block: 256,
    gpu_blocks_per_sm: 32,
    gpu_stage_chunk: 8 << 20,
    gpu_download_chunk: 8 << 20,
    // fm_claim, fm_rollback, fm_winner_last, fm_winner_first, fm_write_winners, fm_add,
    // fm_find, fm_remove, fm_rehash.
    gpu_register_caps: [0, 0, 0, 0, 32, 0, 64, 0, 0],
};
