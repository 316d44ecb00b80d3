//! Charts drawn on the server as inline SVG: no script, no library, nothing from elsewhere
//! (the pages' Content-Security-Policy allows neither inline styles nor other origins). Each
//! chart scales to its container (`viewBox`, width 100% in the stylesheet), says what it shows
//! to screen readers (`role="img"`, a title and a description), and gives every bar and point
//! a `<title>` that shows on hover. The page shows the same numbers as a table too.

use askama::Template;

/// Drawing units of every chart's width; heights vary. Narrow enough that the labels stay
/// readable when a phone shrinks the chart to its width.
pub const WIDTH: i64 = 700;
/// Room for the value axis' labels (left), the last day's label (right) and the day labels
/// (bottom).
pub const LEFT: i64 = 64;
pub const RIGHT: i64 = 40;
const TOP: i64 = 16;
const BOTTOM: i64 = 44;

/// One series of a chart: its colour (a class of the stylesheet, and the same colour as a
/// presentation attribute for readers without the stylesheet) and its name in the legend.
#[derive(Clone, Copy)]
pub struct Series {
    pub class: &'static str,
    pub color: &'static str,
    pub name: &'static str,
}

pub const PUBLISHED: Series = Series {
    class: "s-published",
    color: "#2155d6",
    name: "Published",
};
pub const LIKES: Series = Series {
    class: "s-likes",
    color: "#d6336c",
    name: "Likes",
};
pub const REPOSTS: Series = Series {
    class: "s-reposts",
    color: "#1a7f37",
    name: "Reposts",
};
pub const REPLIES: Series = Series {
    class: "s-replies",
    color: "#b35900",
    name: "Replies",
};
pub const IMPRESSIONS: Series = Series {
    class: "s-impressions",
    color: "#6f42c1",
    name: "Impressions",
};

pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub series: Series,
    pub title: String,
}

pub struct Dot {
    pub x: i64,
    pub y: i64,
    pub title: String,
}

pub struct Label {
    pub x: i64,
    pub y: i64,
    pub text: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
}

pub struct Grid {
    pub y: i64,
}

#[derive(Template)]
#[template(path = "dashboard/chart.html")]
pub struct Chart {
    /// Unique in the page (the ids of its title and description).
    pub id: &'static str,
    pub title: String,
    pub desc: String,
    pub width: i64,
    pub height: i64,
    /// Where the plot's gridlines start and end.
    pub left: i64,
    pub right: i64,
    pub series: Vec<Series>,
    pub rects: Vec<Rect>,
    /// A line through `dots` (`x,y x,y …`), empty for bar charts.
    pub line: String,
    pub line_series: Option<Series>,
    pub dots: Vec<Dot>,
    pub labels: Vec<Label>,
    pub grid: Vec<Grid>,
    pub axis_y: i64,
}

/// The smallest of 1, 2, 5 × 10ⁿ at least `v` (at least 1): the top of a value axis.
pub fn nice_max(v: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= v {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A compact number: 950, 1.2k, 3.4M.
pub fn compact(v: i64) -> String {
    match v.unsigned_abs() {
        0..1_000 => v.to_string(),
        1_000..1_000_000 => format!("{:.1}k", v as f64 / 1e3).replace(".0k", "k"),
        _ => format!("{:.1}M", v as f64 / 1e6).replace(".0M", "M"),
    }
}

/// Column positions (left x, width) for `n` columns over the plot.
fn columns(n: usize) -> impl Iterator<Item = (i64, i64)> {
    let plot = WIDTH - LEFT - RIGHT;
    let n = n.max(1) as i64;
    (0..n).map(move |i| {
        let x0 = LEFT + plot * i / n;
        let x1 = LEFT + plot * (i + 1) / n;
        let gap = ((x1 - x0) / 5).max(1);
        (x0 + gap / 2, (x1 - x0 - gap).max(1))
    })
}

/// The value axis: gridlines and labels at 0, half and the top.
fn value_axis(top: i64, height: i64, unit: &str) -> (Vec<Grid>, Vec<Label>) {
    let plot_h = height - TOP - BOTTOM;
    let mut grid = Vec::new();
    let mut labels = Vec::new();
    let mut marks = vec![0, top];
    if top % 2 == 0 {
        marks.insert(1, top / 2);
    }
    for v in marks {
        let y = TOP + plot_h - plot_h * v / top;
        grid.push(Grid { y });
        labels.push(Label {
            x: LEFT - 10,
            y: y + 8,
            text: if v == top && !unit.is_empty() {
                format!("{} {unit}", compact(v))
            } else {
                compact(v)
            },
            anchor: "end",
        });
    }
    (grid, labels)
}

/// Labels under at most about five of `n` columns, evenly spaced, the last one always.
fn day_labels(short: &[String], height: i64) -> Vec<Label> {
    let n = short.len();
    if n == 0 {
        return Vec::new();
    }
    let every = n.div_ceil(5);
    columns(n)
        .enumerate()
        .filter(|(i, _)| (n - 1 - i).is_multiple_of(every))
        .map(|(i, (x, w))| Label {
            x: x + w / 2,
            y: height - BOTTOM + 28,
            text: short[i].clone(),
            anchor: "middle",
        })
        .collect()
}

/// The days of a chart: as written under the columns, and in full (in each `<title>`).
pub struct Days<'a> {
    pub short: &'a [String],
    pub full: &'a [String],
}

/// One column per day, the series stacked from the bottom. `values[d][s]` is day `d`'s value
/// of series `s`.
pub fn stacked_columns(
    id: &'static str,
    title: String,
    desc: String,
    series: &[Series],
    days: Days<'_>,
    values: &[Vec<i64>],
    unit: &str,
) -> Chart {
    let Days {
        short,
        full: titles,
    } = days;
    let height = 320;
    let plot_h = height - TOP - BOTTOM;
    let top = nice_max(values.iter().map(|v| v.iter().sum()).max().unwrap_or(0));
    let mut rects = Vec::new();
    for (d, (x, w)) in columns(values.len()).enumerate() {
        let mut base = 0i64;
        for (s, serie) in series.iter().enumerate() {
            let v = values[d][s];
            if v <= 0 {
                continue;
            }
            let y0 = TOP + plot_h - plot_h * base / top;
            let y1 = TOP + plot_h - plot_h * (base + v) / top;
            rects.push(Rect {
                x,
                y: y1,
                w,
                h: (y0 - y1).max(1),
                series: *serie,
                title: format!("{}: {v} {}", titles[d], serie.name.to_lowercase()),
            });
            base += v;
        }
    }
    let (grid, mut labels) = value_axis(top, height, unit);
    labels.extend(day_labels(short, height));
    Chart {
        id,
        title,
        desc,
        width: WIDTH,
        height,
        left: LEFT,
        right: WIDTH - RIGHT,
        series: series.to_vec(),
        rects,
        line: String::new(),
        line_series: None,
        dots: Vec::new(),
        labels,
        grid,
        axis_y: height - BOTTOM,
    }
}

/// One point per day joined by a line.
pub fn line(
    id: &'static str,
    title: String,
    desc: String,
    series: Series,
    days: Days<'_>,
    values: &[i64],
) -> Chart {
    let Days {
        short,
        full: titles,
    } = days;
    let height = 260;
    let plot_h = height - TOP - BOTTOM;
    let top = nice_max(values.iter().copied().max().unwrap_or(0));
    let dots: Vec<Dot> = columns(values.len())
        .zip(values)
        .enumerate()
        .map(|(d, ((x, w), v))| Dot {
            x: x + w / 2,
            y: TOP + plot_h - plot_h * (*v).max(0) / top,
            title: format!("{}: {v} {}", titles[d], series.name.to_lowercase()),
        })
        .collect();
    let (grid, mut labels) = value_axis(top, height, "");
    labels.extend(day_labels(short, height));
    Chart {
        id,
        title,
        desc,
        width: WIDTH,
        height,
        left: LEFT,
        right: WIDTH - RIGHT,
        series: vec![series],
        rects: Vec::new(),
        line: dots
            .iter()
            .map(|d| format!("{},{}", d.x, d.y))
            .collect::<Vec<_>>()
            .join(" "),
        line_series: Some(series),
        dots,
        labels,
        grid,
        axis_y: height - BOTTOM,
    }
}

/// One bar per row (an account), the series stacked from the left, its name on the left and
/// `notes[r]` after the bar.
pub fn stacked_rows(
    id: &'static str,
    title: String,
    desc: String,
    series: &[Series],
    names: &[String],
    notes: &[String],
    values: &[Vec<i64>],
) -> Chart {
    const ROW: i64 = 52;
    const NAME: i64 = 210;
    const NOTE: i64 = 120;
    /// Longer names are cut in the chart (they are whole in each bar's title and the table).
    const NAME_CHARS: usize = 16;
    let height = TOP + ROW * values.len() as i64 + 8;
    let plot_w = WIDTH - NAME - NOTE;
    let top = nice_max(values.iter().map(|v| v.iter().sum()).max().unwrap_or(0));
    let mut rects = Vec::new();
    let mut labels = Vec::new();
    for (r, row) in values.iter().enumerate() {
        let y = TOP + ROW * r as i64;
        let mut base = 0i64;
        for (s, serie) in series.iter().enumerate() {
            let v = row[s];
            if v <= 0 {
                continue;
            }
            let x0 = NAME + plot_w * base / top;
            let x1 = NAME + plot_w * (base + v) / top;
            rects.push(Rect {
                x: x0,
                y: y + 8,
                w: (x1 - x0).max(1),
                h: ROW - 20,
                series: *serie,
                title: format!("{}: {v} {}", names[r], serie.name.to_lowercase()),
            });
            base += v;
        }
        labels.push(Label {
            x: NAME - 12,
            y: y + ROW / 2 + 6,
            text: if names[r].chars().count() > NAME_CHARS {
                let cut: String = names[r].chars().take(NAME_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                names[r].clone()
            },
            anchor: "end",
        });
        labels.push(Label {
            x: NAME + plot_w * base / top + 10,
            y: y + ROW / 2 + 6,
            text: notes[r].clone(),
            anchor: "start",
        });
    }
    Chart {
        id,
        title,
        desc,
        width: WIDTH,
        height,
        left: LEFT,
        right: WIDTH - RIGHT,
        series: series.to_vec(),
        rects,
        line: String::new(),
        line_series: None,
        dots: Vec::new(),
        labels,
        grid: Vec::new(),
        axis_y: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_numbers() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(50), 50);
        assert_eq!(nice_max(501), 1000);
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1000), "1k");
        assert_eq!(compact(1250), "1.2k");
        assert_eq!(compact(3_400_000), "3.4M");
    }

    #[test]
    fn bars_stay_inside_the_chart() {
        let short: Vec<String> = (0..90).map(|i| i.to_string()).collect();
        let values: Vec<Vec<i64>> = (0..90).map(|i| vec![i, 2 * i, 0]).collect();
        let c = stacked_columns(
            "t",
            "t".into(),
            "d".into(),
            &[LIKES, REPOSTS, REPLIES],
            Days {
                short: &short,
                full: &short,
            },
            &values,
            "",
        );
        assert_eq!(c.rects.len(), 89 * 2, "no rectangle for a zero");
        for r in &c.rects {
            assert!(r.x >= LEFT && r.x + r.w <= WIDTH - RIGHT, "{}", r.x);
            assert!(r.y >= TOP && r.y + r.h <= c.height - BOTTOM + 1);
        }
        assert!(c.labels.iter().filter(|l| l.anchor == "middle").count() <= 7);
    }
}
