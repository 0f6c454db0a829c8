//! CSV for a regression (`--loss mse`): each row's targets in the columns
//! `--target-columns` names (1-based, as a spreadsheet counts them: `1`, `2-4`, `1,7`,
//! `last`), the features in every other column, in order. The cells follow the CSV rules of
//! csv.rs (separators, line endings, a header row, finite f32 values).

use super::csv::{parse_rows, read_text};
use super::{DataError, Dataset};
use ndarray::Array2;
use std::path::Path;

/// The largest column number `--target-columns` takes: ranges are spelled out column by
/// column when recorded, so `2-4000000000` must be refused before it is.
pub const MOST_COLUMNS: usize = 1 << 20;

/// Which columns hold the targets, as typed: numbers and ranges, or `last`.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetColumns(Vec<ColumnPick>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum ColumnPick {
    /// 1-based, inclusive.
    Range(usize, usize),
    Last,
}

impl TargetColumns {
    /// `1`, `2-4`, `1,7`, `last`, or a mix joined by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let picks = text
            .split(',')
            .map(|item| {
                let item = item.trim();
                let number = |n: &str| {
                    let n = n.trim();
                    match n.parse::<usize>() {
                        Ok(c) if (1..=MOST_COLUMNS).contains(&c) => Ok(c),
                        Ok(c) if c > MOST_COLUMNS => Err(format!(
                            "column {c}: column numbers go up to {MOST_COLUMNS} (`last` names the last column of a wider file)"
                        )),
                        _ => Err(format!("'{n}' is not a column number (1 is the first column)")),
                    }
                };
                match item.split_once('-') {
                    _ if item.eq_ignore_ascii_case("last") => Ok(ColumnPick::Last),
                    _ if item.starts_with('-') => Err(format!(
                        "'{item}' is not a column number (1 is the first column; `last` names the last)"
                    )),
                    Some((a, b)) => {
                        let (a, b) = (number(a)?, number(b)?);
                        match a <= b {
                            true => Ok(ColumnPick::Range(a, b)),
                            false => Err(format!("'{item}' runs backwards")),
                        }
                    }
                    None => number(item).map(|n| ColumnPick::Range(n, n)),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(TargetColumns(picks))
    }

    /// The columns one by one, as `--target-columns` would take them (`2-3, 6` is `2,3,6`):
    /// the form a saved run records, so the same columns typed another way compare equal.
    pub fn canonical(&self) -> String {
        let mut words = Vec::new();
        for pick in &self.0 {
            match *pick {
                ColumnPick::Range(a, b) => words.extend((a..=b).map(|c| c.to_string())),
                ColumnPick::Last => words.push("last".to_string()),
            }
        }
        words.join(",")
    }

    /// How many targets these columns name (`last` is one).
    pub fn count(&self) -> usize {
        let columns = |pick: &ColumnPick| match *pick {
            ColumnPick::Range(a, b) => b - a + 1,
            ColumnPick::Last => 1,
        };
        self.0.iter().map(columns).sum()
    }

    /// The 0-based target columns of a file `width` columns wide, in order; an error when
    /// one is past the last column, one repeats, or no column is left for features.
    pub fn resolve(&self, width: usize) -> Result<Vec<usize>, String> {
        let mut columns = Vec::new();
        for pick in &self.0 {
            let (a, b) = match *pick {
                ColumnPick::Range(a, b) => (a, b),
                ColumnPick::Last => (width, width),
            };
            if b > width {
                return Err(format!("column {b} is past the last of the file's {width} columns"));
            }
            for c in a - 1..b {
                if columns.contains(&c) {
                    return Err(format!("column {} is named twice", c + 1));
                }
                columns.push(c);
            }
        }
        if columns.len() >= width {
            return Err(format!(
                "all {width} columns are targets: no column is left for the features"
            ));
        }
        Ok(columns)
    }
}

/// `path`'s rows as a regression's examples: targets in `columns`, the rest features.
pub fn read_regression_csv(path: &Path, columns: &TargetColumns) -> Result<Dataset, DataError> {
    let bytes = read_text(path)?;
    parse_regression(&bytes, columns).map_err(|why| DataError::Format {
        path: path.to_path_buf(),
        why,
    })
}

pub fn parse_regression(bytes: &[u8], columns: &TargetColumns) -> Result<Dataset, String> {
    let rows = parse_rows(bytes)?;
    let width = rows[0].1.len();
    let targets_at = columns
        .resolve(width)
        .map_err(|why| format!("--target-columns: {why}"))?;
    let features_at: Vec<usize> = (0..width).filter(|c| !targets_at.contains(c)).collect();
    let n = rows.len();
    let pick = |at: &[usize]| {
        let values = rows.iter().flat_map(|(_, row)| at.iter().map(|&c| row[c])).collect();
        Array2::from_shape_vec((n, at.len()), values).expect("every row checked to have the same width")
    };
    Ok(Dataset {
        features: pick(&features_at),
        labels: Vec::new(),
        image_shape: None,
        targets: Some(pick(&targets_at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_picked_as_typed_and_the_rest_are_features() {
        let csv = b"a,b,c,d\n1,2,3,4\n5,6,7,8\n";
        let d = parse_regression(csv, &TargetColumns::parse("2,last").unwrap()).unwrap();
        assert_eq!(d.targets.unwrap().into_raw_vec_and_offset().0, vec![2.0, 4.0, 6.0, 8.0]);
        assert_eq!(d.features.into_raw_vec_and_offset().0, vec![1.0, 3.0, 5.0, 7.0]);
        let d = parse_regression(csv, &TargetColumns::parse("1-2").unwrap()).unwrap();
        assert_eq!(d.features.ncols(), 2);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn bad_columns_are_named() {
        let csv = b"1,2,3\n";
        for (spec, why) in [
            ("4", "column 4 is past the last of the file's 3 columns"),
            ("1,1", "column 1 is named twice"),
            ("1-3", "no column is left for the features"),
        ] {
            let err = parse_regression(csv, &TargetColumns::parse(spec).unwrap()).unwrap_err();
            assert!(err.contains(why), "{spec}: {err}");
        }
        assert_eq!(TargetColumns::parse(" 2-3 , 6,LAST").unwrap().canonical(), "2,3,6,last");
        assert_eq!(TargetColumns::parse(" 2-3 , 6,LAST").unwrap().count(), 4);
        // Spelled out column by column when recorded: a range past any sane width is refused
        // before it is.
        for huge in ["2-4000000000", "2-18446744073709551615", "1048577"] {
            let why = TargetColumns::parse(huge).unwrap_err();
            assert!(why.contains("column numbers go up to 1048576"), "{huge}: {why}");
        }
        assert!(TargetColumns::parse("1048576").is_ok());
        for spec in ["0", "x", "3-1", ""] {
            assert!(TargetColumns::parse(spec).is_err(), "{spec}");
        }
    }
}
