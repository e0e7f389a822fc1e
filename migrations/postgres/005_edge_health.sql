-- What an edge reports about its data plane (POST /edge/v1/health): an edge that is not serving is not live.
ALTER TABLE edge_nodes ADD COLUMN healthy boolean NOT NULL DEFAULT true;
ALTER TABLE edge_nodes ADD COLUMN health_reason text;
