// Swagger UI on the gateway's own document. The document's URL is resolved against this page
// (…/meta/docs -> …/meta/openapi.json), and its server URL ("..") against the document, so
// "Try it out" calls the API under whatever prefix the page was served from.
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", window.location.href).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The page must work offline: no call to swagger.io's online validator.
  validatorUrl: null,
});
