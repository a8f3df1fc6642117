// The save-card page of a saved-card plan: Stripe's Card Element and confirmCardSetup (the same
// code for real Stripe.js and localstripe's mock), then only the SetupIntent's id goes to our
// app, which checks it with Stripe and charges the first payment (see channels/pay_page.py).
(function () {
  "use strict";
  const form = document.getElementById("pay-form");
  const button = document.getElementById("pay-button");
  const cardBox = document.getElementById("card-element");
  const inlineError = document.getElementById("card-errors");
  const failure = document.getElementById("failure");
  const reason = document.getElementById("failure-reason");
  const retry = document.getElementById("failure-retry");
  const generic = document.getElementById("generic-failure").content.textContent;
  const declined = document.getElementById("charge-declined").content.textContent;
  const lang = form.dataset.lang;
  const sandbox = Boolean(document.querySelector(".sandbox"));
  const declines = JSON.parse(document.getElementById("decline-texts").textContent || "{}");

  // As on the pay page (pay.js): our text for the codes we know, in the page's language.
  function explain(error) {
    if (!error) return "";
    const known = declines[error.decline_code] || declines[error.code];
    if (known) return known;
    return sandbox && lang !== "en" ? "" : error.message || "";
  }

  if (typeof window.Stripe !== "function") {
    showFailure(generic, true);
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

  function showFailure(message, canRetry) {
    reason.textContent = message || generic;  // textContent: Stripe's text is not markup
    retry.hidden = !canRetry;
    failure.hidden = false;
  }

  function busy(on) {
    button.disabled = on;
    button.textContent = on ? button.dataset.busy : button.dataset.idle;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  function thanks() {
    document.getElementById("payment").hidden = true;
    const done = document.getElementById("thanks");
    done.hidden = false;
    done.focus();
  }

  async function tellApp(setupIntentId) {
    try {
      const response = await fetch(form.dataset.cardSaved, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({setup_intent: setupIntentId}),
      });
      return (await response.json()).status || "";
    } catch (error) {
      return "";
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    failure.hidden = true;
    inlineError.textContent = "";
    busy(true);
    let result;
    try {
      result = await stripe.confirmCardSetup(form.dataset.secret, {payment_method: {card}});
    } catch (error) {
      result = {error: {message: ""}};
    }
    const setup = result && result.setupIntent;
    if (!result || result.error || !setup || setup.status !== "succeeded") {
      busy(false);
      showFailure(explain(result && result.error), true);
      return;
    }
    const status = await tellApp(setup.id);
    if (status === "succeeded" || status === "processing") {
      thanks();
      return;
    }
    if (status === "declined") {
      button.hidden = true;  // this link is spent; the follow-up message brings a way to pay
      showFailure(declined, false);
      return;
    }
    busy(false);
    showFailure("", true);
  });
})();
