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
  const sandbox = Boolean(form.dataset.sandboxConfirm);
  const declines = JSON.parse(document.getElementById("decline-texts").textContent || "{}");

  // Our text for the codes we know, in the page's language. Otherwise Stripe's own message:
  // Stripe.js speaks the page's language, localstripe's mock only English, so there the
  // reason is left out of a non-English page (the title and the advice below it still show).
  function explain(error) {
    if (!error) return "";
    const known = declines[error.decline_code] || declines[error.code];
    if (known) return known;
    return sandbox && lang !== "en" ? "" : error.message || "";
  }

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
    inlineError.textContent = event && event.error ? explain(event.error) : "";
  });
  card.on("focus", () => cardBox.classList.add("focused"));
  card.on("blur", () => cardBox.classList.remove("focused"));
  button.disabled = false;

  function showFailure(message) {
    reason.textContent = message;  // textContent: Stripe's text is not markup
    reason.hidden = !message;
    failure.hidden = false;
    if (!button.disabled) button.textContent = button.dataset.retry;  // same page, same link
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
    const error = result && result.error;
    if ((intent && intent.status === "canceled") ||
        (error && error.code === "payment_intent_unexpected_state")) {
      // The link closed while the page was open (replaced after a decline, or expired): the
      // server's page for it says so, and points to the newer link when there is one.
      window.location.reload();
      return;
    }
    if (!result || result.error || !intent) {
      busy(false);
      // No code and no message: Stripe (or our server) was not reached.
      showFailure(error && (error.code || error.message) ? explain(error) : generic);
      return;
    }
    if (intent.status === "succeeded" || intent.status === "processing") {
      document.getElementById("payment").hidden = true;
      const thanks = document.getElementById("thanks");
      thanks.hidden = false;
      thanks.focus();
      // The receipt (reference, card, date) is the server's page for this paid link.
      window.location.replace(window.location.pathname + "?done=1");
      return;
    }
    busy(false);
    showFailure(generic);
  });
})();
