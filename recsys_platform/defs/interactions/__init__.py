"""The interactions table: Personalize's interaction columns, from GA4 behaviour and the product DB."""
