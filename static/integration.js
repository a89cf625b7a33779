// 外部連携設定: mode switching, address rows, copy buttons and re-issue confirmation.
// The page works without this file (the server renders everything it needs); this only makes it quicker.
(function () {
  "use strict";

  var page = document.getElementById("integration-page");
  if (!page) { return; }

  // ---- データ連動方式: show only the selected mode's section, at once.
  var modeSelect = page.querySelector("[data-mode-switch]");
  function showMode(mode) {
    page.querySelectorAll(".mode-section").forEach(function (section) {
      section.hidden = section.getAttribute("data-mode") !== mode;
    });
  }
  if (modeSelect) {
    modeSelect.addEventListener("change", function () { showMode(modeSelect.value); });
    showMode(modeSelect.value);
  }

  // ---- Multi-address fields: the textarea becomes one input per address with 追加 / 削除.
  function splitAddresses(text) {
    return text.split(/[\r\n\t,;、，；]+/)
      .map(function (part) { return part.trim(); })
      .filter(function (part) { return part !== ""; });
  }

  // 追加 and 削除: small buttons that only act (type="button": never submit the form).
  function smallButton(kind, text, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button small " + kind;
    button.textContent = text;
    button.addEventListener("click", onClick);
    return button;
  }

  function setupMulti(field) {
    var textarea = field.querySelector("textarea.address-text");
    if (!textarea) { return; }
    var name = textarea.name;
    var id = textarea.id;
    var disabled = textarea.disabled;
    var label = field.querySelector("label").textContent.replace("必須", "").trim();
    var rows = document.createElement("div");
    rows.className = "address-rows";

    function renumber() {
      rows.querySelectorAll(".address-row").forEach(function (row, i) {
        var input = row.querySelector("input");
        input.id = i === 0 ? id : id + "-" + (i + 1);
        input.setAttribute("aria-label", label + " " + (i + 1) + "件目");
      });
    }

    function addRow(value, focus) {
      var row = document.createElement("div");
      row.className = "address-row";
      var input = document.createElement("input");
      input.type = "email";
      input.name = name;
      input.value = value || "";
      input.autocomplete = "email";
      input.placeholder = "例: taro@example.co.jp";
      input.disabled = disabled;
      row.appendChild(input);
      if (!disabled) {
        row.appendChild(smallButton("remove", "削除", function () {
          // Keep one (empty) row so the field never disappears.
          if (rows.querySelectorAll(".address-row").length > 1) {
            row.remove();
          } else {
            input.value = "";
          }
          renumber();
        }));
      }
      rows.appendChild(row);
      renumber();
      if (focus) { input.focus(); }
    }

    var values = splitAddresses(textarea.value);
    if (values.length === 0) { values = [""]; }
    values.forEach(function (value) { addRow(value, false); });
    textarea.replaceWith(rows);

    if (!disabled) {
      rows.after(smallButton("add", "追加", function () { addRow("", true); }));
    }
  }
  page.querySelectorAll("[data-multi]").forEach(setupMulti);

  // ---- コピー buttons (hidden without JavaScript).
  function copyText(source) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(source.value);
    }
    // Plain-HTTP deployments have no clipboard API: select the text so Ctrl+C works.
    source.focus();
    source.select();
    return Promise.reject(new Error("clipboard unavailable"));
  }
  page.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var original = button.textContent;
      copyText(source).then(function () {
        button.textContent = "コピーしました";
      }, function () {
        button.textContent = "選択しました(Ctrl+C でコピー)";
      }).then(function () {
        window.setTimeout(function () { button.textContent = original; }, 2000);
      });
    });
  });

  // ---- 再発行: ask with confirm(); the no-JavaScript checkbox is then not needed.
  page.querySelectorAll("button[data-confirm]").forEach(function (button) {
    var wrapper = button.closest(".reissue");
    var check = wrapper ? wrapper.querySelector(".confirm-check input") : null;
    if (check) {
      check.required = false;
      check.closest(".confirm-check").hidden = true;
    }
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
        return;
      }
      if (check) { check.checked = true; }
    });
  });
}());
