package ca

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// On Kubernetes a proxy proves its identity with its pod's projected
// service account token (audience istio-ca), which the API server checks
// with a TokenReview, as istiod's KubeJWTAuthenticator does
// (security/pkg/server/ca/authenticate/kubeauth/kube_jwt.go and
// security/pkg/k8s/tokenreview/k8sauthn.go).

// DefaultTokenAudiences are the audiences a proxy's token must be for
// (istiod's TOKEN_AUDIENCES default).
var DefaultTokenAudiences = []string{"istio-ca"}

// kubeReviewTimeout bounds one TokenReview call.
const kubeReviewTimeout = 10 * time.Second

// KubeTokens checks Kubernetes service account tokens with TokenReview.
type KubeTokens struct {
	Client kubernetes.Interface
	// Audiences the token must be for (nil: DefaultTokenAudiences).
	Audiences []string
}

// Review asks the API server whether token is a valid service account
// token for the audiences, and returns the service account it names.
// Anything else fails closed: an API error, an unauthenticated token, a
// token of a user that is not a service account, or an answer for other
// audiences.
func (k *KubeTokens) Review(ctx context.Context, token string) (Caller, error) {
	audiences := k.Audiences
	if len(audiences) == 0 {
		audiences = DefaultTokenAudiences
	}
	ctx, cancel := context.WithTimeout(ctx, kubeReviewTimeout)
	defer cancel()
	res, err := k.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Caller{}, fmt.Errorf("kubernetes token review: %w", err)
	}
	return reviewResult(res.Status, audiences)
}

// reviewResult reads a TokenReview's status as istiod's
// getTokenReviewResult does, and checks the audiences the API server
// says the token was authenticated for.
func reviewResult(st authnv1.TokenReviewStatus, audiences []string) (Caller, error) {
	if st.Error != "" {
		return Caller{}, fmt.Errorf("kubernetes token review: %s", st.Error)
	}
	if !st.Authenticated {
		return Caller{}, errors.New("kubernetes token review: the token is not authenticated")
	}
	if len(st.Audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(audiences, a) }) {
		return Caller{}, fmt.Errorf("kubernetes token review: the token is for %v, not %v", st.Audiences, audiences)
	}
	if !slices.Contains(st.User.Groups, "system:serviceaccounts") {
		return Caller{}, fmt.Errorf("kubernetes token review: %q is not a service account", st.User.Username)
	}
	rest, ok := strings.CutPrefix(st.User.Username, saSubjectPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return Caller{}, fmt.Errorf("kubernetes token review: user %q is not %s<namespace>:<service account>", st.User.Username, saSubjectPrefix)
	}
	return Caller{Namespace: ns, ServiceAccount: sa,
		PodName: userExtra(st.User, podNameKey), PodUID: userExtra(st.User, podUIDKey)}, nil
}

// The user extra a pod-bound token's review carries
// (security/pkg/k8s/tokenreview/k8sauthn.go PodNameKey, PodUIDKey).
const (
	podNameKey = "authentication.kubernetes.io/pod-name"
	podUIDKey  = "authentication.kubernetes.io/pod-uid"
)

// userExtra is the one value of a user's extra key ("" if none or many).
func userExtra(u authnv1.UserInfo, key string) string {
	if v := u.Extra[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}
