// Show only the tiles of the chosen class whose confidence is at least the slider's value (no server needed).
(function () {
  var cls = document.getElementById("class-filter");
  var conf = document.getElementById("confidence-filter");
  if (!cls || !conf) return;
  var out = document.getElementById("confidence-value");
  var shown = document.getElementById("shown");
  function apply() {
    var c = cls.value, min = parseFloat(conf.value), n = 0, tiles = document.querySelectorAll(".tile");
    out.textContent = min.toFixed(2);
    tiles.forEach(function (t) {
      var v = parseFloat(t.dataset.confidence);
      var ok = (!c || t.dataset.class === c) && (isNaN(v) || v >= min);
      t.classList.toggle("hidden", !ok);
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + tiles.length + " shown";
  }
  cls.addEventListener("change", apply);
  conf.addEventListener("input", apply);
  apply();
})();
