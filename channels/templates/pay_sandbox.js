// Sandbox only (localstripe): give the mock's confirmCardPayment what real Stripe.js does.
// The card goes to localstripe in createToken; our app receives only the token's card id.
(function () {
  "use strict";
  const MockStripe = window.Stripe;
  if (typeof MockStripe !== "function") return;
  window.Stripe = function (key, options) {
    const stripe = MockStripe(key, options);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async function (clientSecret, data) {
      const card = data && data.payment_method && data.payment_method.card;
      let tokenResult;
      try {
        tokenResult = await stripe.createToken(card);
      } catch (error) {  // the mock throws when no field was typed at all
        return {error: {message: ""}};
      }
      if (tokenResult.error || !tokenResult.token) return {error: tokenResult.error || {}};
      const url = document.getElementById("pay-form").dataset.sandboxConfirm;
      let response, body;
      try {
        response = await fetch(url, {
          method: "POST",
          headers: {"Content-Type": "application/json"},
          body: JSON.stringify({client_secret: clientSecret, card: tokenResult.token.card.id}),
        });
        body = await response.json();
      } catch (error) {
        return {error: {message: ""}};
      }
      if (!response.ok || body.error) return {error: body.error || {}};
      if (body.paymentIntent.status === "requires_action") return authenticate(clientSecret, data);
      return body;
    };
    return stripe;
  };
})();
