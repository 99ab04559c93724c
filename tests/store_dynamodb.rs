//! The store behaviour suite on the DynamoDB adapter, against moto (`scripts/with-moto`).

use integration_tests::{dynamo_table, store_suite};

store_suite!(dynamo_table());
