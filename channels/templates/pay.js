// The pay page: Stripe's Card Element and confirmCardPayment, the same code for real Stripe.js
// and for localstripe's mock (see channels/pay_page.py). All text comes from the page's markup.
(function () {
  "use strict";
  const form = document.getElementById("pay-form");
  const button = document.getElementById("pay-button");
  const cardBox = document.getElementById("card-element");
  const inlineError = document.getElementById("card-errors");
  const failure = document.getElementById("failure");
  const reason = document.getElementById("failure-reason");
  const generic = document.getElementById("generic-failure").content.textContent;
  const lang = form.dataset.lang;

  if (typeof window.Stripe !== "function") {
    showFailure(generic);
    return;
  }
  const stripe = window.Stripe(form.dataset.key, {locale: lang});
  const card = stripe.elements({locale: lang}).create("card", {
    hidePostalCode: false,
    style: {
      base: {
        color: "#1d2433", fontSize: "16px", iconColor: "#0b6e4f",
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        "::placeholder": {color: "#98a2b3"},
      },
      invalid: {color: "#b42318", iconColor: "#b42318"},
    },
  });
  card.mount(cardBox);
  if (cardBox.querySelector("input")) cardBox.classList.add("mock");  // localstripe's inputs
  card.on("change", (event) => {
    inlineError.textContent = event && event.error ? event.error.message : "";
  });
  card.on("focus", () => cardBox.classList.add("focused"));
  card.on("blur", () => cardBox.classList.remove("focused"));
  button.disabled = false;

  function showFailure(message) {
    reason.textContent = message || generic;  // textContent: Stripe's text is not markup
    failure.hidden = false;
  }

  function busy(on) {
    button.disabled = on;
    button.textContent = on ? button.dataset.busy : button.dataset.idle;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    failure.hidden = true;
    inlineError.textContent = "";
    busy(true);
    let result;
    try {
      result = await stripe.confirmCardPayment(form.dataset.secret, {payment_method: {card}});
    } catch (error) {
      result = {error: {message: ""}};
    }
    const intent = result && result.paymentIntent;
    if (!result || result.error || !intent) {
      busy(false);
      showFailure(result && result.error && result.error.message);
      return;
    }
    if (intent.status === "succeeded" || intent.status === "processing") {
      document.getElementById("payment").hidden = true;
      const thanks = document.getElementById("thanks");
      thanks.hidden = false;
      thanks.focus();
      return;
    }
    busy(false);
    showFailure("");
  });
})();
