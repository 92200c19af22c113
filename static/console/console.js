// The account switcher: choosing another account opens its overview.
document.querySelectorAll("[data-account-select]").forEach(function (select) {
  select.addEventListener("change", function () { window.location.href = select.value; });
});
