// Sandbox only (localstripe): its mock Card Element is five bare inputs with the API's field
// names as placeholders (number, exp_month, exp_year, cvc, postal_code). This labels them in the
// page's language (the labels come from #card-element's data-label-* attributes), gives them the
// autocomplete tokens a phone's keyboard and password manager use, and accepts a four-digit
// year: the mock sends "20" + whatever was typed, so "2034" became 202034 ("Bad request"), and
// it jumped to the next field after two year digits. Real Stripe's Element needs none of this.
(function () {
  "use strict";
  const MockStripe = window.Stripe;
  if (typeof MockStripe !== "function") return;
  const FIELDS = {
    number: {auto: "cc-number", label: "labelNumber", wide: true, placeholder: "1234 1234 1234 1234"},
    exp_month: {auto: "cc-exp-month", label: "labelExpMonth", placeholder: "MM"},
    exp_year: {auto: "cc-exp-year", label: "labelExpYear"},
    cvc: {auto: "cc-csc", label: "labelCvc", placeholder: "123"},
    postal_code: {auto: "postal-code", label: "labelPostalCode"},
  };

  function fullYear(typed) {
    const digits = String(typed || "").replace(/\D/g, "");
    return digits.length <= 2 ? "20" + digits : digits;
  }

  function field(box, id, text, inputs) {
    const wrap = document.createElement("div");
    wrap.className = "mock-field";
    const label = document.createElement("label");
    label.textContent = text;
    if (inputs.length === 1) {
      label.htmlFor = inputs[0].id;
    } else {  // expiry: one visible label over month and year, each input named on its own
      label.id = id;
      wrap.setAttribute("role", "group");
      wrap.setAttribute("aria-labelledby", id);
    }
    wrap.appendChild(label);
    const row = document.createElement("div");
    row.className = "mock-inputs";
    inputs.forEach((input) => row.appendChild(input));
    wrap.appendChild(row);
    return wrap;
  }

  function dress(element, box) {
    const labels = box.dataset;
    const inputs = {};
    box.querySelectorAll("input").forEach((input) => {
      const name = input.getAttribute("placeholder");
      if (FIELDS[name]) inputs[name] = input;
    });
    if (Object.keys(inputs).length !== 5) return;  // not the mock we know: leave it alone
    const slash = /\(([^/()]+)\/([^()]+)\)/.exec(labels.labelExpiry || "");
    Object.entries(FIELDS).forEach(([name, spec]) => {
      const input = inputs[name];
      input.id = "card-" + name.replace("_", "-");
      input.name = name;
      input.setAttribute("autocomplete", spec.auto);
      input.setAttribute("inputmode", "numeric");
      input.setAttribute("placeholder", spec.placeholder || "");
      input.removeAttribute("size");
      if (name === "exp_month" || name === "exp_year") {
        input.setAttribute("aria-label", labels[spec.label] || name);
      }
      const typed = input.oninput;  // the mock's: reads every input into element.value
      input.oninput = function (event) {
        // The year field must not jump to the next one after "20": it may be a 4-digit year.
        if (typeof typed === "function") typed.call(this, name === "exp_year" ? {target: null} : event);
        if (element.value && element.value.card) {
          element.value.card.exp_year = fullYear(inputs.exp_year.value);
        }
        if (name === "exp_year") {
          const digits = input.value.replace(/\D/g, "");
          if (digits.length === 4 || (digits.length === 2 && digits !== "20")) inputs.cvc.focus();
        }
      };
    });
    if (slash) inputs.exp_year.setAttribute("placeholder", slash[2].trim());
    const mockLabel = box.querySelector("span");
    if (mockLabel) mockLabel.remove();  // "localstripe: "
    box.appendChild(field(box, "", labels.labelNumber, [inputs.number])).classList.add("wide");
    box.appendChild(field(box, "card-expiry-label", labels.labelExpiry,
                          [inputs.exp_month, inputs.exp_year]));
    box.appendChild(field(box, "", labels.labelCvc, [inputs.cvc]));
    box.appendChild(field(box, "", labels.labelPostalCode, [inputs.postal_code])).classList.add("wide");
    box.classList.add("dressed");
  }

  window.Stripe = function (key, options) {
    const stripe = MockStripe(key, options);
    const elements = stripe.elements;
    stripe.elements = function () {
      const group = elements.apply(this, arguments);
      const create = group.create;
      group.create = function () {
        const element = create.apply(this, arguments);
        const mount = element.mount;
        element.mount = function (box) {
          const result = mount.apply(this, arguments);
          const target = typeof box === "string" ? document.querySelector(box) : box;
          if (target) dress(element, target);
          return result;
        };
        return element;
      };
      return group;
    };
    return stripe;
  };
})();
