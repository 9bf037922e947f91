package livecode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Store codes (门店活码): one code over many stores; its landing page shows
// the nearest store's own channel or group code.
const (
	KindStore  = "store"
	ModeStores = "stores"

	DatumWGS84 = "wgs84" // GPS, and what browsers report
	DatumGCJ02 = "gcj02" // Chinese map services (Amap, Tencent Maps)
)

// Store is a physical store with the live code it hands visitors to.
type Store struct {
	ID        int64   `db:"id" json:"id"`
	CorpID    string  `db:"corp_id" json:"corp_id"`
	Name      string  `db:"name" json:"name"`
	Address   string  `db:"address" json:"address"`
	City      string  `db:"city" json:"city"`
	Lat       float64 `db:"lat" json:"lat"`
	Lng       float64 `db:"lng" json:"lng"`
	Datum     string  `db:"datum" json:"datum"`
	CodeID    int64   `db:"code_id" json:"code_id"`
	CreatedAt int64   `db:"created_at" json:"created_at"`
	UpdatedAt int64   `db:"updated_at" json:"updated_at"`
}

// ErrStoreNotFound: no such store in the corp.
var ErrStoreNotFound = apperr.NotFound("store not found")

func (s *Service) validateStore(ctx context.Context, st *Store) error {
	errs := apperr.Fields{}
	st.Name, st.City = strings.TrimSpace(st.Name), strings.TrimSpace(st.City)
	if st.Name == "" {
		errs["name"] = "is required"
	}
	if st.Lat < -90 || st.Lat > 90 || (st.Lat == 0 && st.Lng == 0) {
		errs["lat"] = "must be a latitude between -90 and 90"
	}
	if st.Lng < -180 || st.Lng > 180 {
		errs["lng"] = "must be a longitude between -180 and 180"
	}
	switch st.Datum {
	case DatumWGS84, DatumGCJ02:
	case "":
		st.Datum = DatumGCJ02
	default:
		errs["datum"] = "must be wgs84 or gcj02"
	}
	c, err := s.store.get(ctx, st.CorpID, st.CodeID)
	switch {
	case errors.Is(err, ErrNotFound):
		errs["code_id"] = "no such live code"
	case err != nil:
		return err
	case c.Kind == KindStore:
		errs["code_id"] = "must be a channel or group code, not a store code"
	case c.Status == StatusArchived:
		errs["code_id"] = "is archived"
	default:
		// One code per store: a code shared by two stores would count one
		// store's visitors and adds for both.
		other, err := s.store.storeUsingCode(ctx, st.CorpID, st.CodeID, st.ID)
		if err != nil {
			return err
		}
		if other != "" {
			errs["code_id"] = fmt.Sprintf("is already the code of store %q; give each store its own code", other)
		}
	}
	return errs.Err()
}

// SaveStore creates (ID 0) or updates a store.
func (s *Service) SaveStore(ctx context.Context, st Store) (Store, error) {
	if err := s.validateStore(ctx, &st); err != nil {
		return Store{}, err
	}
	now := qsql.Millis(s.now())
	st.UpdatedAt = now
	if st.ID == 0 {
		st.CreatedAt = now
		err := s.store.insertStore(ctx, &st)
		return st, err
	}
	if err := s.store.updateStore(ctx, &st); err != nil {
		return Store{}, err
	}
	return s.GetStore(ctx, st.CorpID, st.ID)
}

// GetStore returns one store.
func (s *Service) GetStore(ctx context.Context, corp string, id int64) (Store, error) {
	return s.store.getStore(ctx, corp, id)
}

// DeleteStore removes a store.
func (s *Service) DeleteStore(ctx context.Context, corp string, id int64) error {
	return s.store.deleteStore(ctx, corp, id)
}

// ListStores lists the corp's stores, optionally in one city.
func (s *Service) ListStores(ctx context.Context, corp, city string) ([]Store, error) {
	return s.store.listStores(ctx, corp, city)
}

// storesOf lists the stores a store code covers (all the corp's when it names none).
func (s *Service) storesOf(ctx context.Context, c *Code) ([]Store, error) {
	all, err := s.ListStores(ctx, c.CorpID, "")
	if err != nil || len(c.Settings.StoreIDs) == 0 {
		return all, err
	}
	var out []Store
	for _, st := range all {
		if slices.Contains(c.Settings.StoreIDs, st.ID) {
			out = append(out, st)
		}
	}
	return out, nil
}

// StoreHit is a store with its distance from the visitor.
type StoreHit struct {
	Store
	DistanceKM float64 `json:"distance_km"`
	// Page is the store's own code's landing page; QR its QR image when the
	// code has one fixed QR (WeCom QR, group code).
	Page string `json:"page"`
	QR   string `json:"qr,omitempty"`
}

// Nearest returns up to limit of a store code's stores, nearest first by
// great-circle distance from a browser position (WGS-84), both compared in
// GCJ-02, within the code's radius when it has one. Distances are computed
// for every store; only the kept stores' codes are loaded, in one query.
func (s *Service) Nearest(ctx context.Context, c *Code, lat, lng float64, limit int) ([]StoreHit, error) {
	stores, err := s.storesOf(ctx, c)
	if err != nil {
		return nil, err
	}
	vlat, vlng := wgs84ToGCJ02(lat, lng)
	var hits []StoreHit
	for _, st := range stores {
		slat, slng := st.Lat, st.Lng
		if st.Datum == DatumWGS84 {
			slat, slng = wgs84ToGCJ02(slat, slng)
		}
		d := haversineKM(vlat, vlng, slat, slng)
		if c.Settings.RadiusKM > 0 && d > c.Settings.RadiusKM {
			continue
		}
		hits = append(hits, StoreHit{Store: st, DistanceKM: math.Round(d*100) / 100})
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].DistanceKM < hits[j].DistanceKM })
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits, s.fillPages(ctx, c.CorpID, hits)
}

// StoresIn lists a store code's stores in a city (visitors without location).
func (s *Service) StoresIn(ctx context.Context, c *Code, city string) (cities []string, hits []StoreHit, err error) {
	stores, err := s.storesOf(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, st := range stores {
		if !seen[st.City] {
			seen[st.City] = true
			cities = append(cities, st.City)
		}
		if city != "" && st.City == city {
			hits = append(hits, StoreHit{Store: st})
		}
	}
	sort.Strings(cities)
	return cities, hits, s.fillPages(ctx, c.CorpID, hits)
}

// fillPages sets each hit's landing page and QR from its store's code.
func (s *Service) fillPages(ctx context.Context, corp string, hits []StoreHit) error {
	if len(hits) == 0 {
		return nil
	}
	ids := make([]int64, len(hits))
	for i, h := range hits {
		ids[i] = h.CodeID
	}
	codes, err := s.store.codesByID(ctx, corp, ids)
	if err != nil {
		return err
	}
	for i := range hits {
		c := codes[hits[i].CodeID]
		if c == nil {
			return fmt.Errorf("store %d's code %d: %w", hits[i].ID, hits[i].CodeID, ErrNotFound)
		}
		hits[i].Page = s.LandingURL(c)
		if c.Mode != ModeRotating {
			hits[i].QR = c.QRCode
		}
	}
	return nil
}

// haversineKM is the great-circle distance between two points.
func haversineKM(lat1, lng1, lat2, lng2 float64) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dlat, dlng := (lat2-lat1)*rad, (lng2-lng1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlng/2)*math.Sin(dlng/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// wgs84ToGCJ02 applies China's GCJ-02 offset to a WGS-84 position (the
// published Krasovsky-ellipsoid formula); outside mainland China it is the identity.
func wgs84ToGCJ02(lat, lng float64) (float64, float64) {
	if lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271 {
		return lat, lng
	}
	const a, ee = 6378245.0, 0.00669342162296594323
	dlat := transformLat(lng-105.0, lat-35.0)
	dlng := transformLng(lng-105.0, lat-35.0)
	radLat := lat / 180.0 * math.Pi
	magic := math.Sin(radLat)
	magic = 1 - ee*magic*magic
	sqrtMagic := math.Sqrt(magic)
	dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * sqrtMagic) * math.Pi)
	dlng = (dlng * 180.0) / (a / sqrtMagic * math.Cos(radLat) * math.Pi)
	return lat + dlat, lng + dlng
}

func transformLat(x, y float64) float64 {
	ret := -100.0 + 2.0*x + 3.0*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x))
	ret += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	ret += (20.0*math.Sin(y*math.Pi) + 40.0*math.Sin(y/3.0*math.Pi)) * 2.0 / 3.0
	ret += (160.0*math.Sin(y/12.0*math.Pi) + 320*math.Sin(y*math.Pi/30.0)) * 2.0 / 3.0
	return ret
}

func transformLng(x, y float64) float64 {
	ret := 300.0 + x + 2.0*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x))
	ret += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	ret += (20.0*math.Sin(x*math.Pi) + 40.0*math.Sin(x/3.0*math.Pi)) * 2.0 / 3.0
	ret += (150.0*math.Sin(x/12.0*math.Pi) + 300.0*math.Sin(x/30.0*math.Pi)) * 2.0 / 3.0
	return ret
}
