"""recsys_platform: keeps an e-commerce recommender fresh, from the GA4 export to a Personalize campaign."""
