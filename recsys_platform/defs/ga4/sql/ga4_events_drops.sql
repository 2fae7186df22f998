-- What the merge of ga4_events reads and leaves out, for the materialization's metadata and checks:
-- rows read, rows left out by their (single) reason, consent-denied rows and e-mail user ids refused.
SELECT
  COUNT(*) AS rows_read,
  COUNTIF(drop_reason = 'erased_on_request') AS dropped_erased_on_request,
  COUNTIF(drop_reason = 'without_timestamp') AS dropped_without_timestamp,
  COUNTIF(drop_reason = 'without_event_name') AS dropped_without_event_name,
  COUNTIF(drop_reason = 'malformed_event_date') AS dropped_malformed_event_date,
  COUNTIF(drop_reason = 'implausible_timestamp') AS dropped_implausible_timestamp,
  COUNTIF(drop_reason = 'outside_partition') AS dropped_outside_partition,
  COUNTIF(drop_reason IS NULL AND (user_pseudo_id IS NULL OR IFNULL(privacy_info.analytics_storage, '') = 'No'))
    AS consent_denied_rows,
  COUNTIF(drop_reason IS NULL AND LOOKS_LIKE_EMAIL(user_id)) AS user_ids_refused_as_email,
  COUNTIF(drop_reason IS NULL AND raw_page_location IS NOT NULL
          AND SCRUB_URL(raw_page_location) != raw_page_location) AS page_locations_scrubbed
FROM fragments.ga4_export_rows
