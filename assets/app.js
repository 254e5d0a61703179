/* Bravely — progressive enhancement. Loaded with `defer`; no inline handlers,
   no eval. Every page works without this file. */
(function () {
  "use strict";

  function closest(target, selector) {
    return target instanceof Element ? target.closest(selector) : null;
  }

  /* ---------- Bulk selection ---------- */

  // form.elements also covers inputs attached with the form="" attribute.
  function rowBoxes(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.matches("input.row-select") && !el.disabled;
    });
  }

  function syncSelectAll(form) {
    if (!form) return;
    var boxes = rowBoxes(form);
    var checked = boxes.filter(function (b) { return b.checked; }).length;
    form.querySelectorAll("input.select-all").forEach(function (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    });
  }

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (!(t instanceof HTMLInputElement)) return;
    if (t.matches("input.select-all")) {
      var form = t.closest("form.bulk");
      if (!form) return;
      rowBoxes(form).forEach(function (b) { b.checked = t.checked; });
      syncSelectAll(form);
    } else if (t.matches("input.row-select") && t.form && t.form.matches("form.bulk")) {
      syncSelectAll(t.form);
    }
  });

  /* ---------- data-confirm ---------- */

  // Capture phase on document: runs before htmx's own listeners on the
  // element, so a cancelled confirm also stops hx-post/hx-delete requests.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement)) return;
    var submitter = e.submitter;
    var msg = (submitter && submitter.getAttribute("data-confirm")) ||
              form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  // Links, and buttons that do not submit a form (e.g. hx-delete buttons).
  document.addEventListener("click", function (e) {
    var el = closest(e.target, "a[data-confirm], button[data-confirm]");
    if (!el) return;
    // Plain submit buttons are handled on "submit" (via e.submitter); ones
    // that issue their own htmx request never fire a submit event.
    if (el instanceof HTMLButtonElement && el.type === "submit" && el.form &&
        !el.matches("[hx-get],[hx-post],[hx-put],[hx-patch],[hx-delete]," +
                    "[data-hx-get],[data-hx-post],[data-hx-put],[data-hx-patch],[data-hx-delete]")) return;
    if (!window.confirm(el.getAttribute("data-confirm"))) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  /* ---------- Typeahead ---------- */

  function parts(box) {
    return {
      search: box.querySelector('input[type="search"]'),
      hidden: box.querySelector('input[type="hidden"]'),
      results: box.querySelector("ul.typeahead-results")
    };
  }

  function clearResults(box) {
    var r = parts(box).results;
    if (r) r.replaceChildren();
  }

  function options(box) {
    return Array.prototype.slice.call(box.querySelectorAll("ul.typeahead-results button.typeahead-option"));
  }

  function choose(box, opt) {
    var p = parts(box);
    var id = opt.getAttribute("data-id") || "";
    var label = opt.getAttribute("data-label") || opt.textContent.trim();
    if (p.hidden) {
      p.hidden.value = id;
      p.hidden.dispatchEvent(new Event("change", { bubbles: true }));
    }
    if (p.search) {
      p.search.value = label;
      p.search.dataset.chosenId = id;
      p.search.dataset.chosenLabel = label;
      p.search.focus();
    }
    clearResults(box);
  }

  document.addEventListener("click", function (e) {
    var opt = closest(e.target, "button.typeahead-option");
    var box = opt && opt.closest("div.typeahead");
    if (box) {
      e.preventDefault(); // options may be type=submit buttons inside a form
      choose(box, opt);
      return;
    }
    // A click anywhere else closes open result lists.
    document.querySelectorAll("div.typeahead").forEach(function (b) {
      if (!b.contains(e.target)) clearResults(b);
    });
  });

  // Keep the hidden id honest: once the visible text no longer matches the
  // chosen (or initially rendered) label, the id no longer applies.
  document.addEventListener("input", function (e) {
    var search = e.target;
    if (!(search instanceof HTMLInputElement) || search.type !== "search") return;
    var box = search.closest("div.typeahead");
    var hidden = box && parts(box).hidden;
    if (!hidden) return;
    if (!("chosenLabel" in search.dataset)) {
      search.dataset.chosenLabel = search.defaultValue;
      search.dataset.chosenId = hidden.defaultValue;
    }
    var id = search.value === search.dataset.chosenLabel ? search.dataset.chosenId : "";
    if (hidden.value !== id) {
      hidden.value = id;
      hidden.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });

  document.addEventListener("keydown", function (e) {
    var box = closest(e.target, "div.typeahead");
    if (!box) return;
    var p = parts(box);
    var opts = options(box);
    var onSearch = e.target === p.search;
    var idx = opts.indexOf(e.target);

    if (e.key === "Escape") {
      if (opts.length || (p.results && p.results.children.length)) {
        e.preventDefault(); // don't also wipe the search text
        clearResults(box);
        if (p.search) p.search.focus();
      }
    } else if (e.key === "ArrowDown") {
      if (onSearch && opts.length) { e.preventDefault(); opts[0].focus(); }
      else if (idx >= 0 && idx < opts.length - 1) { e.preventDefault(); opts[idx + 1].focus(); }
    } else if (e.key === "ArrowUp" && idx >= 0) {
      e.preventDefault();
      if (idx > 0) opts[idx - 1].focus();
      else if (p.search) p.search.focus();
    }
  });

  // A search response that arrives after an option was chosen (debounced
  // request still in flight) must not reopen the list.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail && e.detail.target;
    var box = target instanceof Element && target.matches("ul.typeahead-results") && target.closest("div.typeahead");
    if (!box) return;
    var p = parts(box);
    if (p.search && p.hidden && p.hidden.value !== "" &&
        "chosenLabel" in p.search.dataset && p.search.value === p.search.dataset.chosenLabel) {
      e.detail.shouldSwap = false;
    }
  });

  /* ---------- htmx: CSRF header ---------- */

  document.addEventListener("htmx:configRequest", function (e) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var token = meta && meta.getAttribute("content");
    if (token && e.detail && e.detail.headers) e.detail.headers["X-CSRF-Token"] = token;
  });

  /* ---------- Flash messages ---------- */

  var FLASH_MS = 6000;
  var scheduled = new WeakSet();

  function hideFlash(flash) {
    // Don't yank a message away while the user is reading or focusing it.
    if (flash.matches(":hover") || flash.contains(document.activeElement)) {
      setTimeout(function () { hideFlash(flash); }, 2000);
      return;
    }
    flash.classList.add("is-hiding");
    var done = false;
    function remove() {
      if (done) return;
      done = true;
      var parent = flash.parentElement;
      flash.remove();
      if (parent && parent.matches(".flashes") && !parent.children.length) parent.remove();
    }
    flash.addEventListener("transitionend", remove, { once: true });
    setTimeout(remove, 600); // reduced motion / no transition
  }

  function scheduleFlashes(root) {
    var list = [];
    if (root instanceof Element && root.matches("div.flash.flash-success")) list.push(root);
    if (root.querySelectorAll) {
      root.querySelectorAll("div.flash.flash-success").forEach(function (f) { list.push(f); });
    }
    list.forEach(function (f) {
      if (scheduled.has(f)) return;
      scheduled.add(f);
      setTimeout(function () { hideFlash(f); }, FLASH_MS);
    });
  }

  /* ---------- Init (page load and htmx swaps) ---------- */

  function init(root) {
    scheduleFlashes(root);
    var forms = [];
    if (root instanceof Element && root.matches("form.bulk")) forms.push(root);
    if (root.querySelectorAll) root.querySelectorAll("form.bulk").forEach(function (f) { forms.push(f); });
    if (root instanceof Element && !forms.length) {
      var outer = root.closest("form.bulk");
      if (outer) forms.push(outer);
    }
    forms.forEach(syncSelectAll);
  }

  document.addEventListener("htmx:load", function (e) {
    if (e.detail && e.detail.elt) init(e.detail.elt);
  });
  // Back/forward cache restores checkbox state without re-running scripts.
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) document.querySelectorAll("form.bulk").forEach(syncSelectAll);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
})();
