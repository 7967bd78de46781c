SELECT customer_id, region FROM profiles WHERE customer_id = %(customer_id)s
