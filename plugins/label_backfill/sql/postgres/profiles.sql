SELECT customer_id, region FROM profiles ORDER BY customer_id
