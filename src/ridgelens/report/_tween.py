"""The page's one script: the panels glide between the λ slider's stops."""

#: Milliseconds the panels take to glide from one slider stop to another.
TWEEN_MS = 400

#: The page's one script: when λ moves, the moving traces glide through every stop in between
#: (linear between neighbouring stops, eased over :data:`TWEEN_MS`), then the step's own update
#: (tables, readout) is applied. A trace whose point count differs between two stops (a
#: true-loss contour) switches halfway. ``window.ridgelensTween.state(p)`` is the drawn state at
#: a fractional stop ``p`` and ``.ms`` the glide's duration (for tests).
TWEEN_JS = """
(function () {
  const gd = document.getElementById('{plot_id}');
  const steps = () => gd.layout.sliders[0].steps;
  let shown = gd.layout.sliders[0].active || 0, raf = null;
  const mix = (u, v, f) => {
    if (!Array.isArray(u) || !Array.isArray(v) || u.length !== v.length) return f < 0.5 ? u : v;
    return u.map((x, k) => (typeof x === 'number' && typeof v[k] === 'number') ? x + f * (v[k] - x)
                                                                            : (f < 0.5 ? x : v[k]));
  };
  function state(p) {
    const s = steps(), k = Math.max(0, Math.min(Math.floor(p), s.length - 2)), f = p - k;
    const A = s[k].args[0], B = s[k + 1].args[0], idx = s[k].args[2], out = {x: [], y: [], traces: []};
    idx.forEach((t, n) => { if (A.x[n] === null) return;  // a table: it changes at the end
      out.x.push(mix(A.x[n], B.x[n], f)); out.y.push(mix(A.y[n], B.y[n], f)); out.traces.push(t); });
    return out;
  }
  // One frame: a Plotly.animate without redraw moves only the traces' paths (a restyle would recompute
  // and redraw the whole figure, tables included: several times slower). A frame still drawing is not queued.
  let pending = Promise.resolve(), busy = false;
  function draw(p) {
    const st = state(p);
    busy = true;
    pending = Plotly.animate(gd, {data: st.x.map((x, n) => ({x: x, y: st.y[n]})), traces: st.traces},
      {mode: 'immediate', transition: {duration: 0}, frame: {duration: 0, redraw: false}})
      .catch(() => {}).then(() => { busy = false; });
  }
  function finish(i) {
    shown = i;
    pending = pending.then(() => { const a = steps()[i].args;
      return Plotly.update(gd, a[0], Object.assign({}, a[1], {'sliders[0].active': i}), a[2]); });
    return pending;
  }
  function glide(target, from) {
    if (raf !== null) cancelAnimationFrame(raf);
    const t0 = performance.now(), ms = window.ridgelensTween.ms;
    const frame = (now) => {
      const u = Math.max(0, Math.min(1, (now - t0) / ms)), e = u < 0.5 ? 2 * u * u : 1 - 2 * (1 - u) * (1 - u);
      if (u >= 1) { raf = null; finish(target); return; }
      shown = from + e * (target - from);
      if (!busy) draw(shown);
      raf = requestAnimationFrame(frame);
    };
    raf = requestAnimationFrame(frame);
  }
  // From where the panels are: mid-glide, or the stop the slider left (a script may have set it directly).
  gd.on('plotly_sliderchange', (ev) => glide(ev.slider.active, raf === null ? ev.previousActive : shown));
  window.ridgelensTween = {state: state, glide: glide, ms: @MS@};
})();
""".replace("@MS@", str(TWEEN_MS))
