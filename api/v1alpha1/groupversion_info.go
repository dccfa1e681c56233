// Package v1alpha1 contains the kubeplex.io/v1alpha1 API: LogApp, LogDrain and LogSession.
// +kubebuilder:object:generate=true
// +groupName=kubeplex.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "kubeplex.io", Version: "v1alpha1"}

	// SchemeBuilder adds the Go types to a runtime.Scheme. It is apimachinery's
	// builder, not controller-runtime's, so importing the API pulls in no
	// controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &LogApp{}, &LogAppList{}, &LogDrain{}, &LogDrainList{},
		&LogSession{}, &LogSessionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
