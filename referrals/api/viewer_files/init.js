// Starts Swagger UI on /docs.  A file, not an inline script, so that the page's
// Content-Security-Policy can keep script-src to 'self'.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    // No badge fetched from the public validator: the page talks to this origin only.
    validatorUrl: null,
    // ?url= and ?configUrl= must never point the page at another document.
    queryConfigEnabled: false,
  });
});
