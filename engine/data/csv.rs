//! CSV: one example per row, the integer label first, then the features. Cells are
//! separated by commas, semicolons or tabs (whichever the first row uses most); lines end
//! in `\n`, `\r\n` or `\r`; a UTF-8 byte-order mark is skipped. A first row whose first
//! cell, or at least half of whose cells, are text (not numbers, not empty) is a header.
//! Every value must be a finite number that fits in f32; an empty cell, `nan`, `inf` or a
//! word among numbers is an error that names its line and column, never a row quietly
//! dropped. A gzipped file is read as the text it holds.

use super::regression_csv::TargetColumns;
use super::{DataError, Dataset};
use ndarray::Array2;
use std::path::Path;

pub fn read_csv(path: &Path) -> Result<Dataset, DataError> {
    let bytes = read_text(path)?;
    parse_csv(&bytes).map_err(|why| DataError::Format {
        path: path.to_path_buf(),
        why,
    })
}

/// A CSV file's rows as examples: labelled classes, or with `targets` a regression's
/// targets in those columns and its features in the rest.
pub fn read_dataset(path: &Path, targets: Option<&TargetColumns>) -> Result<Dataset, DataError> {
    match targets {
        Some(columns) => super::regression_csv::read_regression_csv(path, columns),
        None => read_csv(path),
    }
}

/// [`read_dataset`] of CSV text already read.
pub fn parse_dataset(bytes: &[u8], targets: Option<&TargetColumns>) -> Result<Dataset, String> {
    match targets {
        Some(columns) => super::regression_csv::parse_regression(bytes, columns),
        None => parse_csv(bytes),
    }
}

/// A CSV file's bytes, decompressed when gzipped.
pub fn read_text(path: &Path) -> Result<Vec<u8>, DataError> {
    super::input_file::read_input_text(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The separator the first row uses most: `,`, `;` or a tab.
fn separator(first: &str) -> char {
    [',', ';', '\t']
        .into_iter()
        .max_by_key(|&c| (first.matches(c).count(), c == ','))
        .unwrap_or(',')
}

/// A first row is a header when its first cell is text, or at least half its cells are:
/// `label,pixel0,...`, `y,0,1,2`. A row of numbers with a stray word (`5,0.1,O.3`) is
/// data with a typo, an error that names it, not a header that drops the row.
fn is_header(cells: &[&str]) -> bool {
    let is_text = |c: &str| !c.is_empty() && c.parse::<f64>().is_err();
    let text = cells.iter().filter(|c| is_text(c)).count();
    cells.first().is_some_and(|c| is_text(c)) || (text > 0 && 2 * text >= cells.len())
}

/// One cell as a finite f32, or why not (with its line and column).
fn value(cell: &str, line: usize, column: usize) -> Result<f32, String> {
    let at = format!("line {line}, column {column}");
    if cell.is_empty() {
        return Err(format!("{at}: empty cell (a missing value, or a separator too many?)"));
    }
    let v: f64 = cell.parse().map_err(|_| format!("{at}: '{cell}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{at}: '{cell}' is not a finite number"));
    }
    // Rounded once, from the text: a value that rounds to f32's largest is f32's largest.
    let single: f32 = cell.parse().map_err(|_| format!("{at}: '{cell}' is not a number"))?;
    if !single.is_finite() {
        return Err(format!(
            "{at}: '{cell}' is too large for f32 (it rounds past the largest, {:e})",
            f32::MAX
        ));
    }
    Ok(single)
}

/// The rows of CSV text as finite f32 cells (see the module doc), each with its line
/// number, every row as wide as the first; errors say what is wrong and where.
pub fn parse_rows(bytes: &[u8]) -> Result<Vec<(usize, Vec<f32>)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // One line ending, whichever the file uses.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let sep = separator(first);
    let (mut width, mut rows, mut seen_row, mut header) = (None, Vec::new(), false, false);
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(sep).map(str::trim).collect();
        if !std::mem::replace(&mut seen_row, true) && is_header(&cells) {
            // The header sets the width, so a short first data row is the one named.
            (width, header) = (Some(cells.len()), true);
            continue;
        }
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            let first = if header { "the header row" } else { "the first row" };
            return Err(format!("line {line_no}: {} columns, {first} has {w}", cells.len()));
        }
        let values = cells
            .iter()
            .enumerate()
            .map(|(c, cell)| value(cell, line_no, c + 1))
            .collect::<Result<Vec<f32>, String>>()
            .map_err(|why| match rows.is_empty() && !header {
                // The first row is a header only when it reads as one ([`is_header`]).
                true => format!("{why} (a header row has text in its first cell, or in at least half its cells)"),
                false => why,
            })?;
        rows.push((line_no, values));
    }
    if rows.is_empty() {
        return Err("no data rows".into());
    }
    Ok(rows)
}

/// Parses labelled CSV text: the label first, then the features.
pub fn parse_csv(bytes: &[u8]) -> Result<Dataset, String> {
    let rows = parse_rows(bytes)?;
    let w = rows[0].1.len();
    if w < 2 {
        return Err(format!(
            "line {}: needs a label and at least one feature, separated by commas, semicolons or tabs",
            rows[0].0
        ));
    }
    let mut labels = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len() * (w - 1));
    for (line_no, row) in &rows {
        let label = row[0];
        if label > 1e6 {
            // Said without the value: read as f32, a label this large is no longer its text.
            return Err(format!(
                "line {line_no}, column 1: a label above 1000000, more classes than chainrule takes"
            ));
        }
        if label < 0.0 || label.fract() != 0.0 {
            return Err(format!(
                "line {line_no}, column 1: label '{label}' is not a class index (0, 1, 2, ...); for real-valued targets, train a regression (--loss mse)"
            ));
        }
        labels.push(label as u32);
        values.extend_from_slice(&row[1..]);
    }
    let features =
        Array2::from_shape_vec((labels.len(), w - 1), values).expect("every row checked to have the same width");
    Ok(Dataset {
        features,
        labels,
        image_shape: None,
        targets: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_accepted_when_it_rounds_to_a_finite_f32_and_refused_when_it_rounds_past() {
        assert_eq!(value("3.4028235e38", 2, 1), Ok(f32::MAX));
        assert_eq!(value("-3.40282356e38", 2, 1), Ok(-f32::MAX));
        let past = value("3.4028236e38", 2, 1).unwrap_err();
        assert!(
            past.contains("line 2, column 1") && past.contains("too large for f32"),
            "{past}"
        );
        assert!(value("1e39", 2, 1).is_err());
    }

    #[test]
    fn a_first_row_is_a_header_only_when_it_reads_as_one() {
        for header in ["label,pixel0,pixel1", "y,0,1", ",a,b", "x1,x2,0.5,target"] {
            let rows =
                parse_rows(format!("{header}\n1,2,3{}\n", ",4".repeat(header.matches(',').count() - 2)).as_bytes());
            assert_eq!(rows.unwrap().len(), 1, "{header}");
        }
        // Numbers with a stray word are data with a typo: an error that names it, not a row
        // dropped as a header.
        let err = parse_rows(b"5,0.1,O.3,0.2\n1,0.2,0.1,0.5\n").unwrap_err();
        assert!(
            err.contains("line 1, column 3: 'O.3'") && err.contains("header row"),
            "{err}"
        );
        // The same typo further down, or in the first row after a header, says nothing of
        // headers.
        let err = parse_rows(b"5,0.1,0.3,0.2\n1,0.2,O.1,0.5\n").unwrap_err();
        assert!(err.contains("line 2, column 3") && !err.contains("header"), "{err}");
        let err = parse_rows(b"label,a,b,c\n1,0.5,,0.2\n").unwrap_err();
        assert!(
            err.contains("line 2, column 3: empty cell") && !err.contains("header"),
            "{err}"
        );
        // A header sets the width: a short first data row is the one named.
        let err = parse_rows(b"label,a,b,c\n1,0.5,0.1\n0,0.1,0.2,0.3\n").unwrap_err();
        assert_eq!(err, "line 2: 3 columns, the header row has 4");
    }
}
