-- macro scrub_url(url)
-- A URL without personal data: scheme, host and path (an e-mail address in the path masked), and only the
-- query parameters @url_params_kept matches (utm_* by default); the fragment (#...) is dropped, since
-- sign-in flows put tokens there. A URL with no '?', '#' or '@' has nothing to scrub and is kept as it is:
-- most URLs of a day, and the regular expressions below cost ~1 s per million URLs on DuckDB.
IF(
  NOT REGEXP_CONTAINS(url, r'[?#@]'),
  url,
  CONCAT(
    REGEXP_REPLACE(REGEXP_EXTRACT(url, r'^[^?#]*'), r'[^/@?#]+@[^/?#]+', '(email)'),
    IFNULL(CONCAT('?', NULLIF(ARRAY_TO_STRING(
      REGEXP_EXTRACT_ALL(IFNULL(REGEXP_EXTRACT(url, r'\?([^#]*)'), ''), @url_params_kept), '&'), '')), '')
  )
)
