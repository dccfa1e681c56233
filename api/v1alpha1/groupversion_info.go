// Package v1alpha1 contains the kubeplex.io/v1alpha1 API: LogApp and LogDrain.
// +kubebuilder:object:generate=true
// +groupName=kubeplex.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "kubeplex.io", Version: "v1alpha1"}

	// SchemeBuilder adds the Go types to a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types in this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
