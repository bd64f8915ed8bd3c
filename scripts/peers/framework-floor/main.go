// Command terraform-provider-floor is the floor of any external provider,
// for scripts/bench: a terraform-plugin-framework provider (protocol 6)
// whose one resource, floor_autodispatch, has beads_autodispatch's
// attributes and blocks (names, types, presence, defaults, plan rules) and
// makes no API calls: create and update store the plan as the state, read
// returns the state as it was. What a no-op plan of it costs is what any
// provider costs Terraform before it does its own work.
package main

import (
	"context"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

func main() {
	err := providerserver.Serve(context.Background(), func() provider.Provider { return floor{} },
		providerserver.ServeOpts{Address: "registry.terraform.io/beads-autodispatch/floor", ProtocolVersion: 6})
	if err != nil {
		log.Fatal(err)
	}
}

type floor struct{}

func (floor) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "floor"
}

// Schema is the beads provider block's, so the two configurations differ
// only in the provider's name; nothing reads it.
func (floor) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	s := func(sensitive bool) pschema.Attribute {
		return pschema.StringAttribute{Optional: true, Sensitive: sensitive}
	}
	resp.Schema = pschema.Schema{Attributes: map[string]pschema.Attribute{
		"config_path": s(false), "config_context": s(false), "host": s(false), "token": s(true),
		"cluster_ca_certificate": s(false), "insecure": pschema.BoolAttribute{Optional: true},
		"client_certificate": s(false), "client_key": s(true),
	}}
}

func (floor) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {}

func (floor) DataSources(context.Context) []func() datasource.DataSource { return nil }

func (floor) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{func() resource.Resource { return autodispatch{} }}
}

type autodispatch struct{}

func (autodispatch) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_autodispatch"
}

// Schema mirrors provider/src/autodispatch/model.rs: `stable` computed
// attributes keep their state, `requires_replace` ones replace. One
// difference in `terraform providers schema -json`: beads says min_items 1
// for the dolt block, which the framework's SingleNestedBlock cannot say.
// The computed attributes stay null here (nothing to compute them from),
// so this state is smaller than beads_autodispatch's.
func (autodispatch) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	stable := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	computed := schema.StringAttribute{Computed: true, PlanModifiers: stable}
	required := schema.StringAttribute{Required: true}
	optional := schema.StringAttribute{Optional: true}
	str := func(def string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(def)}
	}
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	name := str("beads")
	name.PlanModifiers = replace
	resp.Schema = schema.Schema{
		Attributes: map[string]schema.Attribute{
			"id":                computed,
			"namespace":         schema.StringAttribute{Required: true, PlanModifiers: replace},
			"name":              name,
			"enabled":           schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true)},
			"mode":              str("cronjob"),
			"image":             required,
			"image_tag":         str("0.1.0"),
			"beadboard_url":     required,
			"assignee":          str("agent"),
			"dispatch_schedule": str("*/2 * * * *"),
			"reap_schedule":     str("*/10 * * * *"),
			"stale_after":       str("30m"),
			"claim_timeout":     str("5m"),
			"max_in_flight":     schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1)},
			"image_pull_secrets": schema.ListAttribute{ElementType: types.StringType, Optional: true, Computed: true,
				Default: listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{}))},
			"metadata_json":       computed,
			"config_map_name":     computed,
			"dispatcher_cron_job": computed,
			"reaper_cron_job":     computed,
			"instance_id":         computed,
			"objects": schema.MapAttribute{ElementType: types.MapType{ElemType: types.StringType}, Computed: true,
				PlanModifiers: []planmodifier.Map{mapplanmodifier.UseStateForUnknown()}},
		},
		Blocks: map[string]schema.Block{
			"dolt": schema.SingleNestedBlock{Attributes: map[string]schema.Attribute{
				"host":                 required,
				"port":                 schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(3306)},
				"user":                 str("root"),
				"database":             required,
				"project_id":           optional,
				"tls":                  schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false)},
				"password_secret_name": optional,
				"password_secret_key":  optional,
			}},
		},
	}
}

// known is the plan as a state: what Terraform leaves unknown (the
// computed attributes at create) becomes null, since there is no cluster
// to say what they are.
func known(plan tftypes.Value) (tftypes.Value, error) {
	return tftypes.Transform(plan, func(_ *tftypes.AttributePath, v tftypes.Value) (tftypes.Value, error) {
		if !v.IsKnown() {
			return tftypes.NewValue(v.Type(), nil), nil
		}
		return v, nil
	})
}

func (autodispatch) Create(_ context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	raw, err := known(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("plan", err.Error())
		return
	}
	resp.State.Raw = raw
}

func (autodispatch) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (autodispatch) Update(_ context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	raw, err := known(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("plan", err.Error())
		return
	}
	resp.State.Raw = raw
}

func (autodispatch) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}
