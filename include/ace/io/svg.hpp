// SPDX-License-Identifier: MIT
// A small self-contained SVG writer for line plots (loss curves, γ/λ/u trajectories, metric against method).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "ace/error.hpp"
#include "ace/io/files.hpp"

namespace ace::io {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct LinePlot {
  std::string title, x_label, y_label;
  bool log_y = false;  // logarithmic y axis (non-positive values are left out)
  std::vector<Series> series;
  int width = 720, height = 420;
};

namespace detail {
inline std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

/// Tick positions at 1, 2 or 5 times a power of ten covering [lo, hi] (about `target` ticks).
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) ticks.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);
  return ticks;
}

inline std::string format_tick(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}
}  // namespace detail

/// The SVG text of a line plot: axes with ticks, one polyline per series, a legend. Non-finite points are skipped
/// (a diverged run still plots).
inline std::string render_svg(const LinePlot& plot) {
  static constexpr const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  const auto ty = [&](double y) { return plot.log_y ? std::log10(y) : y; };
  const auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!plot.log_y || y > 0); };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : plot.series)
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (usable(s.x[i], s.y[i])) {
        x0 = std::min(x0, s.x[i]);
        x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, ty(s.y[i]));
        y1 = std::max(y1, ty(s.y[i]));
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  const double left = 70, right = plot.width - 150.0, top = 40, bottom = plot.height - 50.0;
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (right - left); };
  const auto py = [&](double y) { return bottom - (y - y0) / (y1 - y0) * (bottom - top); };

  std::ostringstream o;
  o.precision(6);
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << plot.width << "\" height=\"" << plot.height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << (left + right) / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
    << detail::escape_xml(plot.title) << "</text>\n";
  for (double t : detail::nice_ticks(x0, x1)) {
    o << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\"" << bottom
      << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << px(t) << "\" y=\"" << bottom + 16 << "\" text-anchor=\"middle\">"
      << detail::format_tick(t) << "</text>\n";
  }
  for (double t : detail::nice_ticks(y0, y1)) {
    const std::string label = plot.log_y ? "1e" + detail::format_tick(t) : detail::format_tick(t);
    o << "<line x1=\"" << left << "\" y1=\"" << py(t) << "\" x2=\"" << right << "\" y2=\"" << py(t)
      << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << left - 6 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">"
      << label << "</text>\n";
  }
  o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left << "\" height=\"" << bottom - top
    << "\" fill=\"none\" stroke=\"black\"/>\n"
    << "<text x=\"" << (left + right) / 2 << "\" y=\"" << plot.height - 12 << "\" text-anchor=\"middle\">"
    << detail::escape_xml(plot.x_label) << "</text>\n"
    << "<text transform=\"translate(16," << (top + bottom) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << detail::escape_xml(plot.y_label + (plot.log_y ? " (log scale)" : "")) << "</text>\n";
  for (std::size_t k = 0; k < plot.series.size(); ++k) {
    const Series& s = plot.series[k];
    const char* colour = palette[k % std::size(palette)];
    o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (usable(s.x[i], s.y[i])) o << px(s.x[i]) << "," << py(ty(s.y[i])) << " ";
    o << "\"/>\n";
    const double ly = top + 14 + 18.0 * static_cast<double>(k);
    o << "<line x1=\"" << right + 10 << "\" y1=\"" << ly - 4 << "\" x2=\"" << right + 30 << "\" y2=\"" << ly - 4
      << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n<text x=\"" << right + 35 << "\" y=\"" << ly << "\">"
      << detail::escape_xml(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

/// Writes the plot to `path` atomically (write_file_atomically: io_error naming the path on failure, the previous
/// plot untouched).
inline void write_svg(const std::filesystem::path& path, const LinePlot& plot) {
  write_file_atomically(path, render_svg(plot));
}

}  // namespace ace::io
