//! The external sort of an SQLite import's order rows: rows are buffered in runs of bounded size,
//! each run sorted by (customer key, order key, file position) and spilled to an unlinked
//! temporary file beside the database (on a thread of its own, while the next run fills), then the
//! runs are merged back in that order. Memory is two runs plus one buffered reader per run,
//! whatever the file's size; the orders B-tree is then written front to back once, without
//! SQLite's sorter.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::mpsc;

/// (customer key, order key, file position): the order rows are merged in.
type SortKey = (i64, i64, i64);

/// One order row of an import, before line items are added up and occurrences numbered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpillRow {
    pub ckey: i64,
    pub okey: i64,
    /// Position in the file (1-based among the order rows): the order of rows with one key.
    pub seq: i64,
    /// [`retain_core::import::LineMode::code`].
    pub mode: u8,
    pub cancelled: bool,
    /// The row also carries a product line (its order key is needed to store that line).
    pub has_item: bool,
    pub day: i32,
    pub at: i64,
    pub amount: i64,
    pub items: u32,
    pub order_ref: Option<String>,
    pub currency: Option<String>,
    pub product: Option<String>,
}

impl SpillRow {
    fn key(&self) -> SortKey {
        (self.ckey, self.okey, self.seq)
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        for v in [self.ckey, self.okey, self.seq, self.at, self.amount] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&self.day.to_le_bytes())?;
        w.write_all(&self.items.to_le_bytes())?;
        let flags = self.mode | (u8::from(self.cancelled) << 4) | (u8::from(self.has_item) << 5);
        w.write_all(&[flags])?;
        for s in [&self.order_ref, &self.currency, &self.product] {
            match s {
                None => w.write_all(&u32::MAX.to_le_bytes())?,
                Some(s) => {
                    let len = u32::try_from(s.len())
                        .ok()
                        .filter(|&l| l != u32::MAX)
                        .ok_or_else(|| io::Error::other("a field of 4 GiB"))?;
                    w.write_all(&len.to_le_bytes())?;
                    w.write_all(s.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// The next row of a run; `None` at its end.
    fn read(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut fixed = [0u8; 49];
        match r.read_exact(&mut fixed[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        r.read_exact(&mut fixed[1..])?;
        let i64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&fixed[i * 8..i * 8 + 8]);
            i64::from_le_bytes(b)
        };
        let mut four = [0u8; 4];
        four.copy_from_slice(&fixed[40..44]);
        let day = i32::from_le_bytes(four);
        four.copy_from_slice(&fixed[44..48]);
        let items = u32::from_le_bytes(four);
        let flags = fixed[48];
        let mut text = || -> io::Result<Option<String>> {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let len = u32::from_le_bytes(len);
            if len == u32::MAX {
                return Ok(None);
            }
            let mut bytes = vec![0u8; len as usize];
            r.read_exact(&mut bytes)?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        let order_ref = text()?;
        let currency = text()?;
        let product = text()?;
        Ok(Some(Self {
            ckey: i64_at(0),
            okey: i64_at(1),
            seq: i64_at(2),
            at: i64_at(3),
            amount: i64_at(4),
            day,
            items,
            mode: flags & 0x0f,
            cancelled: flags & 0x10 != 0,
            has_item: flags & 0x20 != 0,
            order_ref,
            currency,
            product,
        }))
    }
}

/// Rows buffered in memory before a run is handed to the spilling thread.
pub(crate) const RUN_ROWS: usize = 1 << 18;

/// The thread that sorts and spills full runs while the next one fills.
struct Spiller {
    tx: mpsc::SyncSender<Vec<SpillRow>>,
    /// Spilled runs' buffers come back here, emptied, to be filled again (a fresh buffer of
    /// tens of MiB would be faulted in page by page every time).
    spare: mpsc::Receiver<Vec<SpillRow>>,
    done: std::thread::JoinHandle<io::Result<Vec<File>>>,
}

/// Collects rows; [`Sorter::finish`] hands them back sorted. Full runs are sorted and written
/// on a thread of their own, so at most two runs are in memory: the one filling and the one
/// being spilled.
pub(crate) struct Sorter {
    dir: PathBuf,
    cap: usize,
    buf: Vec<SpillRow>,
    spiller: Option<Spiller>,
}

impl Sorter {
    /// Spills runs of `cap` rows to temporary files in `dir`.
    pub(crate) fn new(dir: PathBuf, cap: usize) -> Self {
        Self {
            dir,
            cap: cap.max(1),
            buf: Vec::new(),
            spiller: None,
        }
    }

    pub(crate) fn push(&mut self, row: SpillRow) -> io::Result<()> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.cap.min(1 << 16));
        }
        self.buf.push(row);
        if self.buf.len() >= self.cap {
            self.spill()?;
        }
        Ok(())
    }

    /// Hands the full run to the spilling thread (started with the first run).
    fn spill(&mut self) -> io::Result<()> {
        let spiller = match &mut self.spiller {
            Some(s) => s,
            None => {
                let (tx, rx) = mpsc::sync_channel::<Vec<SpillRow>>(0);
                let (back, spare) = mpsc::channel::<Vec<SpillRow>>();
                let dir = self.dir.clone();
                let done = std::thread::spawn(move || {
                    let mut files = Vec::new();
                    for mut run in rx {
                        files.push(write_run(&dir, &run)?);
                        run.clear();
                        let _ = back.send(run);
                    }
                    Ok(files)
                });
                self.spiller.insert(Spiller { tx, spare, done })
            }
        };
        let next = spiller
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.cap));
        let run = std::mem::replace(&mut self.buf, next);
        if spiller.tx.send(run).is_err() {
            // The thread stopped: its error says why.
            return Err(match self.spiller.take().map(|s| s.done.join()) {
                Some(Ok(Err(e))) => e,
                _ => io::Error::other("the thread spilling sorted runs stopped"),
            });
        }
        Ok(())
    }

    /// Every row pushed, in (customer key, order key, file position) order.
    pub(crate) fn finish(mut self) -> io::Result<Merged> {
        let Some(spiller) = self.spiller.take() else {
            self.buf.sort_unstable_by_key(SpillRow::key);
            return Ok(Merged::Memory(self.buf.into_iter()));
        };
        let last = std::mem::take(&mut self.buf);
        if !last.is_empty() {
            // A thread that stopped reports why through the join below.
            let _ = spiller.tx.send(last);
        }
        drop(spiller.tx);
        let runs = spiller
            .done
            .join()
            .map_err(|_| io::Error::other("the thread spilling sorted runs panicked"))??;
        let mut readers: Vec<BufReader<File>> = runs
            .into_iter()
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let mut heads = Vec::with_capacity(readers.len());
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            let head = SpillRow::read(r)?;
            if let Some(h) = &head {
                heap.push(Reverse((h.key(), i)));
            }
            heads.push(head);
        }
        Ok(Merged::Runs {
            readers,
            heads,
            heap,
        })
    }
}

/// Sorts one run (its keys, not the rows themselves, are moved by the sort) and writes it to an
/// unlinked temporary file in `dir`, rewound for reading.
fn write_run(dir: &std::path::Path, run: &[SpillRow]) -> io::Result<File> {
    let mut order: Vec<(SortKey, usize)> = run.iter().map(SpillRow::key).zip(0..).collect();
    order.sort_unstable();
    let file = tempfile::tempfile_in(dir)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for (_, i) in order {
        run[i].write(&mut w)?;
    }
    let mut file = w.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// The sorted rows of a [`Sorter`].
pub(crate) enum Merged {
    Memory(std::vec::IntoIter<SpillRow>),
    Runs {
        readers: Vec<BufReader<File>>,
        heads: Vec<Option<SpillRow>>,
        heap: BinaryHeap<Reverse<(SortKey, usize)>>,
    },
}

impl Merged {
    pub(crate) fn next_row(&mut self) -> io::Result<Option<SpillRow>> {
        match self {
            Merged::Memory(it) => Ok(it.next()),
            Merged::Runs {
                readers,
                heads,
                heap,
            } => {
                let Some(Reverse((_, i))) = heap.pop() else {
                    return Ok(None);
                };
                let next = SpillRow::read(&mut readers[i])?;
                if let Some(n) = &next {
                    heap.push(Reverse((n.key(), i)));
                }
                Ok(std::mem::replace(&mut heads[i], next))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ckey: i64, okey: i64, seq: i64, text: Option<&str>) -> SpillRow {
        SpillRow {
            ckey,
            okey,
            seq,
            mode: (seq % 3) as u8,
            cancelled: seq % 2 == 0,
            has_item: seq % 5 == 0,
            day: -3 + seq as i32,
            at: -1_000_000 * seq,
            amount: if seq % 4 == 0 { -seq } else { seq * 100 },
            items: seq as u32,
            order_ref: text.map(|t| format!("{t}-{seq}")),
            currency: (seq % 2 == 1).then(|| "EUR".to_string()),
            product: text.map(|t| format!("ünï\"{t}\n")),
        }
    }

    fn sorted_of(rows: &[SpillRow], cap: usize) -> Vec<SpillRow> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut s = Sorter::new(dir.path().to_path_buf(), cap);
        for r in rows {
            s.push(r.clone()).expect("a spilled row");
        }
        let mut m = s.finish().expect("the merged runs");
        let mut out = Vec::new();
        while let Some(r) = m.next_row().expect("a merged row") {
            out.push(r);
        }
        out
    }

    #[test]
    fn runs_spilled_to_disk_merge_into_the_same_order_as_one_sort_in_memory() {
        // A scrambled sequence with repeated (ckey, okey) pairs, texts and empty texts.
        let rows: Vec<SpillRow> = (1..=2_000i64)
            .map(|seq| {
                let ckey = (seq * 7919) % 37;
                let okey = (seq * 104_729) % 11 - 5;
                let text = match seq % 3 {
                    0 => None,
                    1 => Some(""),
                    _ => Some("x"),
                };
                row(ckey, okey, seq, text)
            })
            .collect();
        let mut want = rows.clone();
        want.sort_by_key(SpillRow::key);
        for cap in [1, 7, 100, 1_999, 2_000, 5_000] {
            let got = sorted_of(&rows, cap);
            assert_eq!(got.len(), want.len(), "cap {cap}");
            assert!(got == want, "cap {cap}: merged rows differ from the sort");
        }
    }

    #[test]
    fn an_empty_sorter_yields_nothing() {
        assert!(sorted_of(&[], 3).is_empty());
    }
}
