/* Starts Swagger UI on the OpenAPI document (a file, not an inline script: the page's
   Content-Security-Policy allows no inline script). */
"use strict";

const config = JSON.parse(document.getElementById("api-docs-config").textContent);
window.ui = SwaggerUIBundle({ url: config.url, dom_id: "#swagger-ui", deepLinking: true });
