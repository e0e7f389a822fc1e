-- What an edge reports about its data plane (POST /edge/v1/health): an edge that is not serving is not live.
ALTER TABLE edge_nodes ADD COLUMN healthy INTEGER NOT NULL DEFAULT 1;
ALTER TABLE edge_nodes ADD COLUMN health_reason TEXT;
