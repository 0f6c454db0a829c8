//! The legend, in its own column beside the plot: a sample of each series (its dash, colour
//! and marker) with its name and detail, the reference lines, then the notes. Long text
//! wraps rather than running off the page.

use super::draw::{guide_look, FONT};
use super::marks::{self, Area, Drawn, Look};
use super::GuideKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub enum Entry {
    Series {
        look: Look,
        name: String,
        details: Vec<String>,
    },
    Guide {
        kind: GuideKind,
        label: String,
    },
    Note(String),
}

const TOP: i32 = 28;
const SAMPLE: (i32, i32) = (6, 46);
const TEXT_X: i32 = 54;
const LINE: i32 = 19;
/// Characters that fit on a line beside a sample (about 7 pixels each for a name, 6.5 for
/// the smaller details), and across the column for a note.
const NAME_CHARS: usize = 31;
const DETAIL_CHARS: usize = 35;
const NOTE_CHARS: usize = 40;
const NOTE_GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// `text` in lines of at most `width` characters, broken at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn write(area: &Area<Shift>, text: &str, (x, y): (i32, i32), size: u32, color: RGBColor) -> Drawn {
    let style = TextStyle::from((FONT, size).into_font())
        .color(&color)
        .pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(text.to_string(), (x, y), style))
}

/// Text beside a sample, wrapped, written where there is an area; returns the y below it.
fn write_beside(
    area: Option<&Area<Shift>>,
    text: &str,
    y: i32,
    size: u32,
    color: RGBColor,
) -> Result<i32, DrawingAreaErrorKind<std::io::Error>> {
    let mut y = y;
    let chars = if size < 17 { DETAIL_CHARS } else { NAME_CHARS };
    for line in wrap(text, chars) {
        if let Some(area) = area {
            write(area, &line, (TEXT_X, y), size, color)?;
        }
        y += LINE;
    }
    Ok(y)
}

/// Lays the legend out from the top, drawing it where there is an area: the y below its
/// last entry. One walk serves drawing and measuring, so the height is the drawn one.
fn walk(area: Option<&Area<Shift>>, entries: &[Entry]) -> Result<i32, DrawingAreaErrorKind<std::io::Error>> {
    let mut y = TOP;
    for entry in entries {
        match entry {
            Entry::Series { look, name, details } => {
                if let Some(area) = area {
                    marks::draw_line(area, vec![(SAMPLE.0, y), (SAMPLE.1, y)], look.color, look.dash)?;
                    marks::draw_mark(area, ((SAMPLE.0 + SAMPLE.1) / 2, y), *look, false)?;
                }
                y = write_beside(area, name, y, 17, BLACK)?;
                for detail in details {
                    y = write_beside(area, detail, y - 2, 15, NOTE_GREY)?;
                }
            }
            Entry::Guide { kind, label } => {
                if let Some(area) = area {
                    let (color, dash) = guide_look(*kind);
                    marks::draw_line(area, vec![(SAMPLE.0, y), (SAMPLE.1, y)], color, dash)?;
                }
                y = write_beside(area, label, y, 17, BLACK)?;
            }
            Entry::Note(note) => {
                y += 4;
                for line in wrap(note, NOTE_CHARS) {
                    if let Some(area) = area {
                        write(area, &line, (SAMPLE.0, y), 15, NOTE_GREY)?;
                    }
                    y += LINE - 2;
                }
            }
        }
        y += 6;
    }
    Ok(y)
}

pub fn draw(area: &Area<Shift>, entries: &[Entry]) -> Drawn {
    walk(Some(area), entries).map(|_| ())
}

/// The pixels the legend of `entries` takes, from the top of its column.
pub fn height(entries: &[Entry]) -> u32 {
    walk(None, entries).map_or(0, |y| y.max(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn long_legend_text_wraps_at_spaces() {
        assert_eq!(
            wrap("none = cheap = budget:64MiB = every:2", 16),
            ["none = cheap =", "budget:64MiB =", "every:2"]
        );
        assert_eq!(wrap("sqrt", 16), ["sqrt"]);
    }
}
